"""laptime: a benchmark for neural-network training algorithms.

``laptime.bench(...)`` runs a benchmark from Python (:mod:`laptime.benchmark`); it is imported on
first use, so ``import laptime`` stays light (no torch).
"""
__version__ = "0.1.0"

_LAZY = {"bench": "laptime.benchmark", "BenchmarkResult": "laptime.benchmark"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'laptime' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
