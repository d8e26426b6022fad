"""Readers of other benchmarks' logs: they turn them into :class:`~laptime.records.TrialRecord` s.

:mod:`.algoperf` reads AlgoPerf's experiment trees (``eval_measurements.csv`` per trial) with its
target tables, so that ``laptime score`` and ``laptime report`` work on published AlgoPerf results.
No torch here.
"""

from laptime.importers.algoperf import (
    AlgoPerfImportError,
    ImportResult,
    TargetTable,
    import_into_store,
    load_targets,
    read_tree,
)

__all__ = ["AlgoPerfImportError", "ImportResult", "TargetTable", "import_into_store", "load_targets", "read_tree"]
