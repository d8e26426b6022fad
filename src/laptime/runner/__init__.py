"""The timed loop for one trial, its clocks, progress display and environment description."""

from laptime.runner.clock import DeviceClock, ManualClock
from laptime.runner.trial import TrialOptions, TrialResult, derive_seeds, run_trial

__all__ = ["DeviceClock", "ManualClock", "TrialOptions", "TrialResult", "derive_seeds", "run_trial"]
