"""Shared test setup.

For the whole session, datasets are prepared into a fresh temporary ``$LAPTIME_DATA`` (tests
never touch ``~/.cache``), and ``$LAPTIME_DATA_SOURCES`` points at the local copies of the real
datasets in ``<repo>/../shared/data`` (when that directory exists), from which ``laptime.data.locate``
copies, md5-checked, what a test needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def laptime_data_root(tmp_path_factory: pytest.TempPathFactory):
    """The session's data root (``$LAPTIME_DATA``), with ``$LAPTIME_DATA_SOURCES`` set."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("laptime-data")
    patch.setenv("LAPTIME_DATA", str(root))
    sources = [str(SHARED_DATA_DIR)] if SHARED_DATA_DIR.is_dir() else []
    if os.environ.get("LAPTIME_DATA_SOURCES"):
        sources.append(os.environ["LAPTIME_DATA_SOURCES"])
    if sources:
        patch.setenv("LAPTIME_DATA_SOURCES", os.pathsep.join(sources))
    else:
        patch.setenv("LAPTIME_DATA_SOURCES", "")
    yield root
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def laptime_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """The session's ``$LAPTIME_CACHE`` (``laptime list``'s cached listing): tests never write ``~/.cache``."""
    patch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("laptime-cache")
    patch.setenv("LAPTIME_CACHE", str(root))
    yield root
    patch.undo()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``<repo>/../shared/data`` (the local copies of real datasets); skips the test if absent."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"no local dataset copies at {SHARED_DATA_DIR}")
    return SHARED_DATA_DIR


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for tiny models: as fast alone, far faster when the 2 cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn_workload():
    """The MNIST-1D CNN workload (CPU), shared by the algorithm tests."""
    from laptime.workloads import default_workloads

    return default_workloads().create("mnist1d", variant="cnn")
