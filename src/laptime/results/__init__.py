"""Where finished trials live: a torch-free SQLite results store.

>>> from laptime.results import ResultsStore, default_store_path
>>> with ResultsStore(default_store_path()) as store:      # doctest: +SKIP
...     run_id = store.start_run("laptime run mnist1d adamw")
...     store.add_trial(run_id, trial)                     # trial: laptime.records.TrialRecord
...     df = store.to_pandas("evals")
...     run = store.run()          # the latest benchmark: a StoredRun (a table in a notebook)

See :mod:`laptime.results.store` for the atomicity and concurrency guarantees and
:mod:`laptime.results.schema` for the table layout.
"""

from laptime.results.schema import SCHEMA_VERSION
from laptime.results.runs import StoredRun
from laptime.results.store import Claim, ResultsStore, StoreError, default_store_path

__all__ = ["SCHEMA_VERSION", "Claim", "ResultsStore", "StoreError", "StoredRun", "default_store_path"]
