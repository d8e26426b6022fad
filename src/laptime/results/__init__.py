"""Where finished trials live: a torch-free SQLite results store.

>>> from laptime.results import ResultsStore, default_store_path
>>> with ResultsStore(default_store_path()) as store:      # doctest: +SKIP
...     run_id = store.start_run("laptime run mnist1d adamw")
...     store.add_trial(run_id, trial)                     # trial: laptime.records.TrialRecord
...     df = store.to_pandas("evals")

See :mod:`laptime.results.store` for the atomicity and concurrency guarantees and
:mod:`laptime.results.schema` for the table layout.
"""

from laptime.results.schema import SCHEMA_VERSION
from laptime.results.store import ResultsStore, StoreError, default_store_path

__all__ = ["SCHEMA_VERSION", "ResultsStore", "StoreError", "default_store_path"]
