"""Datasets: sources with checksums, explicit preparation into a local cache, device-resident batching.

``prepare(name, source=None)`` fetches (copies or downloads, md5-checked) a dataset into
``data_root()/name``; ``locate(name)`` returns it or explains how to prepare it; workloads only
call ``locate`` so a timed run never downloads. ``check`` / ``verify`` say whether a prepared
dataset is intact (cheaply, or by hashing every file).
"""

from laptime.data.sources import (
    SOURCES,
    DataError,
    DataFile,
    DatasetNotReady,
    DatasetStatus,
    DataSource,
    check,
    data_root,
    dataset_dir,
    ensure,
    get_source,
    known_sources,
    local_source_dirs,
    locate,
    md5_file,
    prepare,
    prepare_command,
    status,
    verify,
)

__all__ = [
    "SOURCES",
    "DataError",
    "DataFile",
    "DatasetNotReady",
    "DatasetStatus",
    "DataSource",
    "check",
    "data_root",
    "dataset_dir",
    "ensure",
    "get_source",
    "known_sources",
    "local_source_dirs",
    "locate",
    "md5_file",
    "prepare",
    "prepare_command",
    "status",
    "verify",
]
