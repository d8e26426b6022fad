"""Dataset sources: where each dataset comes from, its checksums, and how it is made available.

A dataset lives in ``data_root()/<name>/``. It gets there only through :func:`prepare` (an
explicit step: ``laptime data prepare NAME [--source PATH|URL]``), which copies a local file or
downloads the official file (or a mirror), always checking the md5 and never leaving a
half-written file behind. Workloads call :func:`locate`, which never downloads: it returns the
prepared directory, copies a verified local copy from ``$LAPTIME_DATA_SOURCES`` if one is there,
or raises :class:`DataError` with the command that prepares the dataset.

Datasets generated offline by a package (MNIST-1D) have no files to fetch; :func:`prepare` and
:func:`locate` run their generator once and cache the result.
"""

from __future__ import annotations

import contextlib
import http.client
import dataclasses
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from laptime.atomic import atomic_write

#: Seconds to wait on a stalled connection (per blocking socket operation, not for the whole file).
DOWNLOAD_TIMEOUT_SEC = 30.0
#: Environment variable naming the data root.
ROOT_ENV = "LAPTIME_DATA"
#: Environment variable: ``os.pathsep``-separated directories holding ``<name>/<filename>`` copies.
SOURCES_ENV = "LAPTIME_DATA_SOURCES"
#: Written into a dataset directory once every file is verified.
STAMP_NAME = ".laptime-verified.json"

_CHUNK = 1 << 20


class DataError(Exception):
    """A dataset is missing, corrupt or could not be fetched. The message is meant for users."""


@dataclasses.dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its name inside the dataset directory, official URL and md5.

    ``url`` is ``None`` for a file with no public source (it must be prepared from a local copy).
    ``md5`` is ``None`` when the official host serves files whose bytes may vary (re-exports with
    other line endings or an extra column): ``check`` then verifies the *content* (it raises
    :class:`DataError` on a mismatch). ``aliases`` are other names a local copy may carry.
    """

    filename: str
    url: str | None
    md5: str | None
    check: Callable[[Path], None] | None = dataclasses.field(default=None, compare=False, repr=False)
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.md5 is None and self.check is None:
            raise ValueError(f"{self.filename}: a data file needs an md5 or a content check")

    def verify(self, path: Path, origin: str, actual_md5: str | None = None) -> None:
        """Raise :class:`DataError` unless ``path`` is this file (by md5, else by its content check)."""
        if self.md5 is not None:
            actual = actual_md5 or md5_file(path)
            if actual != self.md5:
                raise DataError(
                    f"checksum mismatch for {self.filename!r} from {origin}: expected md5 "
                    f"{self.md5}, got {actual}. The file was discarded."
                )
        else:
            assert self.check is not None
            try:
                self.check(path)
            except DataError as exc:
                raise DataError(f"{self.filename!r} from {origin} is not the expected data: {exc}. The file was discarded.") from exc


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A dataset: its name, its files and what it is.

    ``generate`` (for datasets built offline by a package) writes the dataset into the directory
    it is given; such sources have no ``files``.
    """

    name: str
    files: tuple[DataFile, ...]
    description: str
    generate: Callable[[Path], None] | None = dataclasses.field(default=None, compare=False, repr=False)
    #: Turns the verified files into a fast cache inside the dataset directory (uint8 arrays,
    #: token tensors, graph tensors). Runs once after the files are verified, and again when
    #: ``build_version`` changes. Must write atomically (a crash leaves no half-written cache).
    build: Callable[[Path], None] | None = dataclasses.field(default=None, compare=False, repr=False)
    build_version: str = "1"
    #: Prepares the dataset from a local copy in another layout (e.g. an image-folder tree):
    #: ``import_local(source_path, directory)`` writes the cache (verifying the content against a
    #: fingerprint, raising :class:`DataError` on a mismatch) and returns a short description of
    #: what it imported. Used when ``--source PATH`` does not hold the official files.
    import_local: Callable[[Path, Path], str] | None = dataclasses.field(default=None, compare=False, repr=False)
    #: Other folder names a local copy may sit in under a ``$LAPTIME_DATA_SOURCES`` directory
    #: (e.g. ``ogbg-molhiv`` for ``molhiv``); the source's own name is always tried first.
    local_names: tuple[str, ...] = ()

    @property
    def is_generated(self) -> bool:
        return self.generate is not None

    @property
    def downloadable(self) -> bool:
        return bool(self.files) and all(f.url for f in self.files)


def _generate_mnist1d(directory: Path) -> None:
    from laptime.data import mnist1d  # imported lazily: needs the mnist1d package

    mnist1d.generate(directory)


#: Modules of ``laptime.data`` that define more sources (a module-level ``SOURCES`` list). They
#: import nothing heavy at import time (RDKit, Pillow load inside their functions).
_SOURCE_MODULES = ("ptb", "cifar10", "molhiv")


def _module_sources() -> list[DataSource]:
    import importlib

    return [source for name in _SOURCE_MODULES for source in importlib.import_module(f"laptime.data.{name}").SOURCES]


SOURCES: Mapping[str, DataSource] = MappingProxyType(
    {
        "tinyshakespeare": DataSource(
            name="tinyshakespeare",
            files=(
                DataFile(
                    filename="input.txt",
                    url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                    md5="6fb458f1232090904fb40fe944165e91",
                ),
            ),
            description="Tiny Shakespeare (Karpathy's char-rnn): 1,115,394 characters of plain text.",
        ),
        "mnist1d": DataSource(
            name="mnist1d",
            files=(),
            description=(
                "MNIST-1D (Greydanus 2020), the standard 4,000/1,000 split generated offline by the "
                "mnist1d package and cached as npz."
            ),
            generate=_generate_mnist1d,
        ),
        **{source.name: source for source in _module_sources()},
    }
)


def known_sources() -> Mapping[str, DataSource]:
    """All known data sources by name (read-only)."""
    return SOURCES


def get_source(name: str) -> DataSource:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SOURCES))}") from None


# --------------------------------------------------------------------------- paths


def data_root() -> Path:
    """``$LAPTIME_DATA`` if set, else ``$XDG_CACHE_HOME/laptime/data`` (default ``~/.cache``)."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "laptime" / "data"


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    return (Path(root).expanduser() if root is not None else data_root()) / name


def md5_file(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_command(name: str) -> str:
    return f"laptime data prepare {name} [--source PATH|URL]"


# --------------------------------------------------------------------------- verification stamp
# Once all files of a dataset pass their md5 check, a stamp records each file's size and mtime, so
# that ``locate`` need not re-hash large files on every run; a changed file is hashed again.


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _file_identity(f: DataFile) -> str:
    return f.md5 if f.md5 is not None else "content-checked"


def _write_stamp(directory: Path, source: DataSource, built: bool = True) -> None:
    """Record the verified files; the cache's ``built`` mark is kept unless ``built=False`` (new
    files: the cache must be rebuilt). A stale ``imported`` mark is never carried over."""
    stamp: dict = {f.filename: {"md5": _file_identity(f), "stat": _stat_key(directory / f.filename)} for f in source.files}
    previous = _read_stamp(directory).get("built")
    if built and previous is not None:
        stamp["built"] = previous
    _save_stamp(directory, stamp)


def _save_stamp(directory: Path, stamp: Mapping) -> None:
    _atomic_write_text(directory / STAMP_NAME, json.dumps(stamp, indent=1, sort_keys=True))


def _read_stamp(directory: Path) -> dict:
    try:
        return json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _is_verified(directory: Path, source: DataSource) -> bool:
    """True when every file is present with the right md5 (trusting the stamp if unchanged)."""
    stamp = _read_stamp(directory)
    if source.import_local is not None and isinstance(stamp.get("imported"), dict):
        # prepared from a local copy in another layout: the cache itself is the dataset
        return _is_built(directory, source, stamp)
    rehashed = False
    for f in source.files:
        path = directory / f.filename
        if not path.is_file():
            return False
        entry = stamp.get(f.filename, {})
        if entry.get("md5") == _file_identity(f) and entry.get("stat") == _stat_key(path):
            continue
        try:
            f.verify(path, str(path))
        except DataError:
            return False
        rehashed = True
    if rehashed:
        with contextlib.suppress(OSError):
            _write_stamp(directory, source)
    return True


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


# --------------------------------------------------------------------------- fetching


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _file_url(source: str, data_file: DataFile) -> str:
    """A full file URL if ``source`` ends with the file name, else ``source`` as a prefix."""
    path = urllib.parse.urlparse(source).path
    if path.rstrip("/").rsplit("/", 1)[-1] == data_file.filename and not path.endswith("/"):
        return source
    return source.rstrip("/") + "/" + data_file.filename


def _local_file(source: Path, name: str, data_file: DataFile, n_files: int) -> Path:
    """The local file to copy: ``source`` itself, or ``source/<file>``, or ``source/<name>/<file>``
    (``<file>`` being the file's name or one of its aliases)."""
    names = (data_file.filename, *data_file.aliases)
    if source.is_file():
        if n_files == 1 or source.name in names:
            return source
        return source.parent / data_file.filename
    for filename in names:
        for candidate in (source / filename, source / name / filename):
            if candidate.is_file():
                return candidate
    raise DataError(
        f"no file {data_file.filename!r} for dataset {name!r} in {source} (looked for "
        f"{source / data_file.filename} and {source / name / data_file.filename})"
    )


def _fetch_to_temp(reader, directory: Path, data_file: DataFile, origin: str) -> Path:
    """Stream ``reader`` into a temp file in ``directory`` and check its md5.

    Returns the temp path (the caller renames it); on any failure the temp file is removed.
    """
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{data_file.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: reader.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        data_file.verify(tmp, origin, digest.hexdigest())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; prepared data is meant to be shared
        return tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _download(url: str, directory: Path, data_file: DataFile, timeout: float) -> Path:
    request = urllib.request.Request(url, headers={"User-Agent": "laptime-data"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _fetch_to_temp(response, directory, data_file, url)
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {data_file.filename!r} failed: HTTP {exc.code} {exc.reason} from {url}") from exc
    except urllib.error.URLError as exc:
        raise DataError(f"download of {data_file.filename!r} failed: {exc.reason} ({url})") from exc
    except TimeoutError as exc:
        raise DataError(f"download of {data_file.filename!r} timed out after {timeout:g} s ({url})") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DataError(f"download of {data_file.filename!r} failed: {exc!r} ({url})") from exc


def _copy(path: Path, directory: Path, data_file: DataFile) -> Path:
    try:
        reader = open(path, "rb")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    with reader:
        try:
            return _fetch_to_temp(reader, directory, data_file, str(path))
        except OSError as exc:
            raise DataError(f"could not copy {path} into {directory}: {exc}") from exc


# --------------------------------------------------------------------------- public API


def prepare(
    name: str,
    source: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    *,
    force: bool = False,
    timeout: float = DOWNLOAD_TIMEOUT_SEC,
) -> Path:
    """Make dataset ``name`` available under ``root/name/`` and return that directory.

    ``source`` is a local directory or file (copied), or an http(s) URL of the file or of a
    directory prefix (downloaded); by default each file's official URL. Every file is checked
    against its md5 before it is renamed into place; a mismatch raises :class:`DataError` naming
    both checksums and the source. Files already present and verified are kept unless ``force``.
    """
    spec = get_source(name)
    directory = dataset_dir(name, root)
    if spec.is_generated and source is not None:
        raise DataError(f"dataset {name!r} is generated offline and takes no --source")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the dataset directory {directory}: {exc}") from exc
    if spec.is_generated:
        if force or not _generated_ready(directory):
            (directory / STAMP_NAME).unlink(missing_ok=True)
            spec.generate(directory)
            made = {p.name: md5_file(p) for p in sorted(directory.iterdir()) if p.is_file() and not p.name.startswith(".")}
            _save_stamp(directory, {"generated": made})
        return directory
    if not force and _is_verified(directory, spec):
        _ensure_built(directory, spec)
        return directory
    src = None if source is None else os.fspath(source)
    local = None
    if src is not None and not _is_url(src):
        local = Path(src).expanduser()
        if not local.exists():
            raise DataError(f"source {local} does not exist (expected a directory, a file or an http(s) URL)")
        if spec.import_local is not None and not _has_official_files(local, name, spec):
            return _import(spec, local, directory)
    if src is None and not spec.downloadable:
        raise DataError(
            f"dataset {name!r} has no public download address; prepare it from a local copy:\n"
            f"    laptime data prepare {name} --source PATH"
        )
    for data_file in spec.files:
        target = directory / data_file.filename
        if not force and target.is_file():
            try:
                data_file.verify(target, str(target))
                continue
            except DataError:
                pass
        if local is not None:
            tmp = _copy(_local_file(local, name, data_file, len(spec.files)), directory, data_file)
        else:
            url = data_file.url if src is None else _file_url(src, data_file)
            assert url is not None
            tmp = _download(url, directory, data_file, timeout)
        os.replace(tmp, target)
    _write_stamp(directory, spec, built=False)
    _ensure_built(directory, spec)
    return directory


def _has_official_files(local: Path, name: str, spec: DataSource) -> bool:
    try:
        for data_file in spec.files:
            _local_file(local, name, data_file, len(spec.files))
    except DataError:
        return False
    return bool(spec.files)


def _import(spec: DataSource, local: Path, directory: Path) -> Path:
    """Prepare from a local copy in another layout through ``spec.import_local``."""
    assert spec.import_local is not None
    (directory / STAMP_NAME).unlink(missing_ok=True)
    what = spec.import_local(local, directory)
    _save_stamp(directory, {"imported": {"from": str(local), "what": what}, "built": spec.build_version})
    return directory


def _is_built(directory: Path, spec: DataSource, stamp: Mapping | None = None) -> bool:
    if spec.build is None and spec.import_local is None:
        return True
    stamp = _read_stamp(directory) if stamp is None else stamp
    return stamp.get("built") == spec.build_version


def _ensure_built(directory: Path, spec: DataSource) -> None:
    """Run the source's cache builder unless the stamp says this version is built already."""
    if spec.build is None or _is_built(directory, spec):
        return
    try:
        spec.build(directory)
    except (OSError, ValueError) as exc:  # a DataError from the builder passes through as it is
        raise DataError(f"could not build the cache of dataset {spec.name!r} in {directory}: {exc}") from exc
    _save_stamp(directory, {**_read_stamp(directory), "built": spec.build_version})


def _generated_ready(directory: Path) -> bool:
    made = _read_stamp(directory).get("generated")
    return isinstance(made, dict) and bool(made) and all((directory / name).is_file() for name in made)


#: Where local dataset copies are looked for when ``$LAPTIME_DATA_SOURCES`` is not set (relative to
#: the working directory): a ``data`` folder, and a ``shared/data`` folder beside the checkout.
DEFAULT_SOURCE_DIRS = ("data", "../shared/data")


def local_source_dirs() -> list[Path]:
    """The directories listed in ``$LAPTIME_DATA_SOURCES``, else :data:`DEFAULT_SOURCE_DIRS`
    (existing ones only)."""
    raw = os.environ.get(SOURCES_ENV)
    candidates = raw.split(os.pathsep) if raw is not None else list(DEFAULT_SOURCE_DIRS)
    return [Path(p).expanduser() for p in candidates if p and Path(p).expanduser().is_dir()]


def _find_local_copy(spec: DataSource) -> Path | None:
    if not spec.files:
        return None
    for base in local_source_dirs():
        for folder in (spec.name, *spec.local_names):
            candidate = base / folder
            try:
                for f in spec.files:
                    path = _local_file(candidate, spec.name, f, len(spec.files))
                    f.verify(path, str(path))
            except DataError:
                continue
            return candidate
    return None


def locate(name: str, root: str | os.PathLike | None = None) -> Path:
    """The prepared directory of dataset ``name``; never downloads.

    If the dataset is not prepared but ``$LAPTIME_DATA_SOURCES`` holds a copy with the right
    checksums, it is copied in (verified). Generated datasets are generated on first use.
    Otherwise raises :class:`DataError` telling the user how to prepare it.
    """
    spec = get_source(name)
    directory = dataset_dir(name, root)
    if spec.is_generated:
        return prepare(name, root=root)
    if directory.is_dir() and _is_verified(directory, spec):
        _ensure_built(directory, spec)
        return directory
    local = _find_local_copy(spec)
    if local is not None:
        return prepare(name, source=local, root=root)
    files = ", ".join(f.filename for f in spec.files)
    state = "is not prepared" if not directory.exists() else "is incomplete or fails its checksum"
    raise DataError(
        f"dataset {name!r} {state} in {directory} (needs {files}).\n"
        f"Prepare it once with:\n"
        f"    laptime data prepare {name}\n"
        f"or from a local copy or a mirror:\n"
        f"    laptime data prepare {name} --source PATH|URL\n"
        f"(set ${ROOT_ENV} to keep data elsewhere, or ${SOURCES_ENV} to directories holding "
        f"{name}/{spec.files[0].filename if spec.files else ''} copies)."
    )


def ensure(name: str, root: str | os.PathLike | None = None, download: bool = True,
           log: Callable[[str], None] | None = None) -> Path:
    """Make dataset ``name`` ready before a run: :func:`locate` (prepared, local copy or generated),
    else — when ``download`` — fetch it from its official URL (md5-checked).

    Raises :class:`DataError` with the commands that fix it when neither works.
    """
    try:
        return locate(name, root)
    except DataError as missing:
        if not download:
            raise
        if log is not None:
            log(f"dataset {name!r} is not prepared: downloading it from its official source (md5-checked)")
        try:
            return prepare(name, root=root)
        except DataError as failed:
            raise DataError(f"{missing}\nDownloading it failed too: {failed}") from failed


def status(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which datasets are prepared under ``root`` (without copying or generating anything)."""
    result = {}
    for name, spec in SOURCES.items():
        directory = dataset_dir(name, root)
        if spec.is_generated:
            result[name] = _generated_ready(directory)
        else:
            result[name] = directory.is_dir() and _is_verified(directory, spec)
    return result


__all__ = [
    "DataError",
    "DataFile",
    "DataSource",
    "data_root",
    "dataset_dir",
    "ensure",
    "get_source",
    "locate",
    "local_source_dirs",
    "md5_file",
    "prepare",
    "prepare_command",
    "SOURCES",
    "known_sources",
    "status",
]
