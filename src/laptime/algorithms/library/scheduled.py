"""Learning-rate schedules from the literature composed with an update rule (filled in as they are added)."""

from __future__ import annotations

from laptime.api import Algorithm


def scheduled_algorithms() -> list[Algorithm]:
    return []
