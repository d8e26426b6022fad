"""Datasets: sources with checksums, explicit preparation into a local cache, device-resident batching.

``prepare(name, source=None)`` fetches (copies or downloads, md5-checked) a dataset into
``data_root()/name``; ``locate(name)`` returns it or explains how to prepare it; workloads only
call ``locate`` so a timed run never downloads.
"""

from laptime.data.sources import (
    SOURCES,
    DataError,
    DataFile,
    DataSource,
    data_root,
    dataset_dir,
    get_source,
    local_source_dirs,
    locate,
    md5_file,
    prepare,
    prepare_command,
    known_sources,
    status,
)

__all__ = [
    "SOURCES",
    "DataError",
    "DataFile",
    "DataSource",
    "data_root",
    "dataset_dir",
    "get_source",
    "local_source_dirs",
    "locate",
    "md5_file",
    "prepare",
    "prepare_command",
    "known_sources",
    "status",
]
