"""What ``laptime list`` shows — every workload spec and algorithm summary — without importing torch.

Building the listing means importing every workload and algorithm module, hence torch and
pytorch-optimizer: 4-5 s on a busy 2-core machine, for a command that only prints text. So the
listing is built once and kept in a cache file, ``$LAPTIME_CACHE/catalog-<fingerprint>.json``
(default ``$XDG_CACHE_HOME/laptime``, i.e. ``~/.cache/laptime``; the latest few are kept); then
``laptime list`` takes about 0.35 s there. The fingerprint hashes everything the listing is made from: the source files of the packages that define workloads and algorithms
(``laptime.api``, ``.workloads``, ``.algorithms``, ``.data``), laptime's, torch's and
pytorch-optimizer's versions, and the installed plugins (entry points and their distributions'
versions). Any change to those gives another fingerprint, so a stale listing is never shown: the
next ``laptime list`` rebuilds it (slow once) and caches it again. A cache that cannot be written
(read-only home) only costs the speed.

So that the *first* ``laptime list`` after an install is fast too, the listing of laptime's own
workloads and algorithms ships with the package (``catalog_builtin.json``, written by
``python -m laptime.cli.catalog``), stamped with the fingerprint of the sources it was built from.
It is used when no plugin is installed and the sources still hash to that stamp (a clean install or
checkout); an edited checkout or a plugin falls back to the cache. A test checks that the shipped
file matches the registries, so it cannot go stale in a commit unnoticed.

A workload whose spec says ``provisional`` is listed as provisional until its calibration record
lands in ``docs/calibration/`` (``NAME_VARIANT_CONFIG.json``, written by ``laptime calibrate --out``
or ``benchmarks/gpu_window.py collect``; ``$LAPTIME_CALIBRATION_RECORDS`` names another folder): a
record counts when it names the workload's key and, for a gpu configuration, was made on CUDA.
The records are part of the fingerprint (and the shipped listing is stamped with them), so a new
record shows at the next ``laptime list``; an installed package without the folder uses the shipped
listing as it was built.
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

#: Packages of laptime whose files define what ``laptime list`` shows.
SOURCE_PACKAGES = ("api", "workloads", "algorithms", "data")
#: Entry-point groups of plugins (workloads and algorithms).
PLUGIN_GROUPS = ("laptime.workloads", "laptime.algorithms")
#: Distributions whose versions may change the listing.
DISTRIBUTIONS = ("laptime", "torch", "pytorch-optimizer")
CACHE_ENV = "LAPTIME_CACHE"
_FORMAT = "laptime.catalog/1"
#: Cached listings kept (of different source states: checkouts, versions).
KEEP = 4
RECORDS_ENV = "LAPTIME_CALIBRATION_RECORDS"


def records_dir() -> Path:
    """``$LAPTIME_CALIBRATION_RECORDS``, else the checkout's ``docs/calibration`` (src/laptime/cli → repo)."""
    env = os.environ.get(RECORDS_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[3] / "docs" / "calibration"


def records_fingerprint() -> str | None:
    """sha256 (16 hex digits) of the calibration records, None when there is no records folder."""
    folder = records_dir()
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.json")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def calibration_record(name: str, variant: str, config: str) -> str | None:
    """The record of ``name/variant@config`` in :func:`records_dir` (its file name), if there is one
    that names this workload and, for a gpu configuration, was made on CUDA."""
    path = records_dir() / f"{name}_{variant}_{config}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("workload") != f"{name}/{variant}@{config}":
        return None
    device = (record.get("hardware") or {}).get("device_type")
    if config.startswith("gpu") and device != "cuda":
        return None
    return path.name


def cache_dir() -> Path:
    """``$LAPTIME_CACHE`` if set, else ``$XDG_CACHE_HOME/laptime`` (default ``~/.cache/laptime``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "laptime"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


#: The listing of laptime's own workloads and algorithms, shipped with the package.
BUILTIN = Path(__file__).with_name("catalog_builtin.json")


def _plugins() -> list[str]:
    """Every installed plugin entry point of :data:`PLUGIN_GROUPS`, with its distribution's version."""
    found = []
    for group in PLUGIN_GROUPS:
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
            dist = getattr(ep, "dist", None)
            version = f"{dist.name}={dist.version}" if dist is not None else "-"
            found.append(f"{group}:{ep.name}={ep.value}@{version}")
    return found


def source_fingerprint() -> str:
    """sha256 (16 hex digits) of laptime's own source files that define the listing."""
    root = Path(__file__).resolve().parents[1]  # the laptime package
    digest = hashlib.sha256(_FORMAT.encode())
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts and path.is_file():
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class _Inputs(NamedTuple):
    """What the listing is made from, read once per ``laptime list`` (hashing the sources and scanning
    the entry points are most of its start-up)."""

    sources: str
    records: str | None
    plugins: list[str]


def _inputs() -> _Inputs:
    return _Inputs(source_fingerprint(), records_fingerprint(), _plugins())


def fingerprint(inputs: _Inputs | None = None) -> str:
    """sha256 (16 hex digits) of what the listing is made from (see the module docstring)."""
    inputs = inputs or _inputs()
    digest = hashlib.sha256(inputs.sources.encode())
    digest.update(f"records={inputs.records}\0".encode())
    for name in DISTRIBUTIONS:
        digest.update(f"{name}={_version(name)}\0".encode())
    for plugin in inputs.plugins:
        digest.update(plugin.encode() + b"\0")
    return digest.hexdigest()[:16]


def shipped(inputs: _Inputs | None = None) -> dict[str, Any] | None:
    """The shipped listing, when it describes what is installed: no plugins, and the sources (and
    calibration records, where their folder exists) it was built from. None otherwise."""
    inputs = inputs or _inputs()
    if inputs.plugins:
        return None
    try:
        payload = json.loads(BUILTIN.read_text(encoding="utf-8"))
        if (payload.get("format") == _FORMAT and payload.get("sources") == inputs.sources
                and (inputs.records is None or payload.get("records") == inputs.records)):
            return payload["catalog"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


def write_builtin() -> Path:
    """Write :data:`BUILTIN` from the registries (laptime's own entries only)."""
    from laptime.atomic import atomic_write

    payload = {"format": _FORMAT, "sources": source_fingerprint(), "records": records_fingerprint(),
               "catalog": build(include_plugins=False)}
    with atomic_write(BUILTIN, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1)
        fh.write("\n")
    return BUILTIN


def build(include_plugins: bool = True) -> dict[str, Any]:
    """The listing, from the registries (imports every workload and algorithm, hence torch)."""
    from laptime.algorithms import default_algorithms
    from laptime.workloads import default_workloads

    return {
        "workloads": [
            {"key": s.key, "name": s.name, "variant": s.variant, "config": s.config, "version": s.version,
             "dataset": s.dataset, "metric": s.target.metric, "direction": s.target.direction,
             "validation_target": s.target.validation, "test_target": s.target.test,
             "budget_sec": s.max_allowed_runtime_sec, "eval_period_sec": s.eval_period_time_sec,
             "budget_steps": s.max_allowed_steps, "eval_period_steps": s.eval_period_steps_or_default,
             "step_hint": s.step_hint, "calibration": s.calibration,
             "record": (record := calibration_record(s.name, s.variant, s.config)),
             "provisional": s.provisional and record is None}
            for s in default_workloads(include_entry_points=include_plugins).specs()
        ],
        "algorithms": [{"name": a.name, "summary": a.summary}
                       for a in default_algorithms(include_entry_points=include_plugins).all()],
    }


def load() -> dict[str, Any]:
    """The listing: from the cache when it matches the current fingerprint, else built and cached."""
    inputs = _inputs()
    key = fingerprint(inputs)
    path = cache_dir() / f"catalog-{key}.json"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("format") == _FORMAT and cached.get("fingerprint") == key:
            return cached["catalog"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass  # no cache yet, or an unreadable one: the shipped listing, or build it
    catalog = shipped(inputs)
    if catalog is not None:
        return catalog
    catalog = build()
    _save(path, {"format": _FORMAT, "fingerprint": key, "catalog": catalog})
    return catalog


def _save(path: Path, payload: dict[str, Any]) -> None:
    from laptime.atomic import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            json.dump(payload, fh)
        # keep the listings of the few latest source states (several checkouts may share the cache)
        others = sorted((p for p in path.parent.glob("catalog-*.json") if p != path),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEEP - 1:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # a cache we cannot write only costs speed


if __name__ == "__main__":  # python -m laptime.cli.catalog: refresh the shipped listing
    print(write_builtin())
