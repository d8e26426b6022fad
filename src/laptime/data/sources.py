"""Dataset sources: where each dataset comes from, its checksums, and how it is made available.

A dataset lives in ``data_root()/<name>/``. It gets there only through :func:`prepare` (an
explicit step: ``laptime data prepare NAME [--source PATH|URL]``), which copies a local file or
downloads the official file (or a mirror), always checking the md5. Workloads call :func:`locate`,
which never downloads: it returns the prepared directory, copies a verified local copy from
``$LAPTIME_DATA_SOURCES`` if one is there, or raises :class:`DatasetNotReady` saying what it found
and the command that prepares the dataset. :func:`ensure` (before runs) downloads what is missing.

Datasets generated offline by a package (MNIST-1D) have no files to fetch; :func:`prepare` and
:func:`locate` run their generator once and cache the result.

**Nothing half-made.** A preparation writes into a hidden staging folder (``.<name>.staging-…``
beside the dataset folder for a new dataset, ``.staging-…`` inside it otherwise) and moves the
result into place only once every file is verified and the cache is built; on any failure the
staging folder is removed, so a failed first preparation leaves no dataset folder at all. The
stamp (:data:`STAMP_NAME`) is written last; a folder without a valid stamp is never trusted.

**The stamp and the two checks.** The stamp records, for each source file, its md5 (or that it is
content-checked) and, for each cache file (what the builder, importer or generator wrote), its
sha256 — each with the size and mtime it had when it was recorded. Opening a dataset
(:func:`locate`, :func:`status`) makes the *cheap* check: every file is there and has the
recorded size and mtime; a file whose size or mtime changed is hashed again and must match (a copy
with new mtimes passes, once, and its stamp is refreshed). :func:`verify` (``laptime data
verify``) makes the *full* check: every file hashed again, whatever its mtime (about a second per
few hundred MB). Damage found in the cache is repaired by rebuilding it from the verified source
files (no download); damaged source files are fetched again.

Other packages add sources through the ``laptime.datasets`` entry-point group (a
:class:`DataSource`, an iterable of them, or a factory of either; see :mod:`laptime.plugins`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from laptime.atomic import atomic_write
from laptime.plugins import load_entry_points, skip_plugin
from laptime.errors import LaptimeError

#: Seconds to wait on a stalled connection (per blocking socket operation, not for the whole file).
DOWNLOAD_TIMEOUT_SEC = 30.0
#: Environment variable naming the data root.
ROOT_ENV = "LAPTIME_DATA"
#: Environment variable: ``os.pathsep``-separated directories holding ``<name>/<filename>`` copies.
SOURCES_ENV = "LAPTIME_DATA_SOURCES"
#: Written into a dataset directory, last, once every file is verified and the cache is built.
STAMP_NAME = ".laptime-verified.json"
#: Entry-point group through which other packages add data sources.
ENTRY_POINT_GROUP = "laptime.datasets"
#: The hash recorded for every cache file when it is written and checked when it is opened.
CACHE_HASH = "sha256"

_CHUNK = 1 << 20
_STAGING = ".staging-"
#: A source's name is a folder name under the data root.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DataError(LaptimeError):
    """A dataset is missing, corrupt or could not be fetched. The message is meant for users."""


class DatasetNotReady(DataError):
    """:func:`locate` found the dataset missing or damaged and could not fix it without a download.

    ``summary`` says what was found in a few words (for a log line before a download);
    ``downloadable``: whether fetching the official files would fix it.
    """

    def __init__(self, message: str, summary: str, downloadable: bool):
        super().__init__(message)
        self.summary = summary
        self.downloadable = downloadable


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
        if not isinstance(self.filename, str) or not _NAME.match(self.filename):
            raise ValueError(f"data file name {self.filename!r}: use letters, digits, '_', '.', '-' (a file in "
                             "the dataset's folder)")

    def problem(self, path: Path) -> str | None:
        """What is wrong with ``path`` as this file (``fails its checksum: expected md5 …, found
        …`` or what the content check found), or ``None`` when it is this file."""
        try:
            if self.md5 is not None:
                actual = md5_file(path)
                return None if actual == self.md5 else f"fails its checksum: expected md5 {self.md5}, found {actual}"
            assert self.check is not None
            self.check(path)
        except DataError as exc:
            return f"is not the expected data ({exc})"
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        return None

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
    #: Turns the verified files into a fast cache inside the directory it is given (uint8 arrays,
    #: token tensors, graph tensors). Runs once after the files are verified, and again when
    #: ``build_version`` changes or the cache is found damaged. It runs in a staging folder that
    #: is moved into place only when it succeeds; every file it writes is recorded (sha256). The
    #: source files there are hard links to the prepared ones: read them, never modify them.
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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"dataset name {self.name!r}: use letters, digits, '_', '.', '-' (it names a folder)")

    @property
    def is_generated(self) -> bool:
        return self.generate is not None

    @property
    def downloadable(self) -> bool:
        return bool(self.files) and all(f.url for f in self.files)

    @property
    def has_cache(self) -> bool:
        return self.build is not None or self.import_local is not None or self.is_generated


def _generate_mnist1d(directory: Path) -> None:
    from laptime.data import mnist1d  # imported lazily: needs the mnist1d package

    mnist1d.generate(directory)


#: Modules of ``laptime.data`` that define more sources (a module-level ``SOURCES`` list). They
#: import nothing heavy at import time (RDKit, Pillow load inside their functions).
_SOURCE_MODULES = ("ptb", "cifar10", "molhiv")


def _module_sources() -> list[DataSource]:
    import importlib

    return [source for name in _SOURCE_MODULES for source in importlib.import_module(f"laptime.data.{name}").SOURCES]


#: The built-in sources (plugins come on top: :func:`known_sources`).
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


def plugin_sources() -> dict[str, DataSource]:
    """The sources of installed ``laptime.datasets`` plugins, by name (read anew at each call).
    One whose name is taken, or a plugin that fails to load, is skipped with a warning."""
    found: dict[str, DataSource] = {}
    for source, where in load_entry_points(ENTRY_POINT_GROUP, DataSource, "dataset"):
        if source.name in SOURCES or source.name in found:
            skip_plugin("dataset", source.name, where, "is already defined")
            continue
        found[source.name] = source
    return found


def known_sources() -> Mapping[str, DataSource]:
    """All known data sources by name (read-only): the built-in ones and the plugins'."""
    return MappingProxyType({**SOURCES, **plugin_sources()})


def get_source(name: str) -> DataSource:
    if name in SOURCES:
        return SOURCES[name]
    plugins = plugin_sources()
    if name in plugins:
        return plugins[name]
    known = sorted({*SOURCES, *plugins})
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise DataError(f"unknown dataset {name!r}{hint}; known datasets: {', '.join(known)}")


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


def _hash_file(path: str | os.PathLike, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_file(path: str | os.PathLike) -> str:
    return _hash_file(path, "md5")


def prepare_command(name: str) -> str:
    return f"laptime data prepare {name} [--source PATH|URL]"


# --------------------------------------------------------------------------- the stamp and the checks


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _file_identity(f: DataFile) -> str:
    return f.md5 if f.md5 is not None else "content-checked"


def _save_stamp(directory: Path, stamp: Mapping) -> None:
    _atomic_write_text(directory / STAMP_NAME, json.dumps(stamp, indent=1, sort_keys=True))


def _read_stamp(directory: Path) -> dict:
    try:
        stamp = json.loads((directory / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _record_cache(directory: Path, names) -> dict:
    """The stamp's record of cache files: sha256, size and mtime of each."""
    return {name: {CACHE_HASH: _hash_file(directory / name, CACHE_HASH), "stat": _stat_key(directory / name)}
            for name in sorted(names)}


def _written_files(directory: Path, spec: DataSource) -> list[str]:
    """The files a build, an import or a generator wrote: every plain file that is not a source
    file, the stamp or hidden (temporary files and staging folders are hidden)."""
    sources = {f.filename for f in spec.files}
    return sorted(p.name for p in directory.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name not in sources)


@dataclasses.dataclass
class _State:
    """What :func:`_inspect` found in a dataset directory."""

    exists: bool
    present: bool  # anything of the dataset is there (a source file, an imported or generated cache)
    file_problems: list[str]  # "<file> fails its checksum: …", "<file> is missing"
    verified: set[str]  # the source files that passed
    cache: str | None  # why the cache cannot be used as it is (None: it can)
    damaged: bool  # the cache was there and changed (not merely unbuilt or from an older builder)
    imported: dict | None
    checked_bytes: int = 0

    @property
    def ready(self) -> bool:
        return self.present and not self.file_problems and self.cache is None

    @property
    def rebuildable(self) -> bool:
        """The source files are verified (or there are none: generated): only the cache needs making."""
        return self.present and not self.file_problems and self.cache is not None and self.imported is None


def _inspect(directory: Path, spec: DataSource, full: bool = False) -> _State:
    """Check a dataset directory against its stamp: cheaply (size and mtime, re-hashing only files
    whose size or mtime changed) or, with ``full``, by hashing every file. Records what it learns
    in the stamp: refreshed stats of files that still match, a full check's damage (so the next
    cheap check sees it too), and the cache of a stamp written before cache records existed."""
    if not directory.is_dir():
        return _State(False, False, [f"{f.filename} is missing" for f in spec.files], set(), None, False, None)
    stamp = _read_stamp(directory)
    had_stamp = bool(stamp)
    changed = False
    checked = 0
    imported = stamp.get("imported") if spec.import_local is not None and isinstance(stamp.get("imported"), dict) else None
    problems: list[str] = []
    verified: set[str] = set()
    if imported is None:
        for f in spec.files:
            path = directory / f.filename
            if not path.is_file():
                problems.append(f"{f.filename} is missing")
                continue
            entry = stamp.get(f.filename)
            entry = entry if isinstance(entry, dict) else {}
            stat = _stat_key(path)
            if not full and entry.get("md5") == _file_identity(f) and entry.get("stat") == stat:
                verified.add(f.filename)
                continue
            problem = f.problem(path)
            checked += stat[0]
            if problem is None:
                verified.add(f.filename)
                changed |= entry != {"md5": _file_identity(f), "stat": stat}
                stamp[f.filename] = {"md5": _file_identity(f), "stat": stat}
            else:
                problems.append(f"{f.filename} {problem}")
                if entry.get("stat") is not None:
                    stamp[f.filename] = {**entry, "stat": None}  # damaged: never trusted on its stat again
                    changed = True
    present = (imported is not None or any((directory / f.filename).is_file() for f in spec.files)
               or (spec.is_generated and "generated" in stamp))
    cache, damaged = None, False
    if spec.has_cache and present:
        cache, damaged, cache_changed, cache_checked = _inspect_cache(directory, spec, stamp, full)
        changed |= cache_changed
        checked += cache_checked
    if changed and (had_stamp or verified):
        with contextlib.suppress(OSError):  # a read-only data root still works, it is only re-checked
            _save_stamp(directory, stamp)
    return _State(True, present, problems, verified, cache, damaged, imported, checked)


def _inspect_cache(directory: Path, spec: DataSource, stamp: dict, full: bool) -> tuple[str | None, bool, bool, int]:
    """(problem, damaged, stamp changed, bytes hashed) for the cache part of ``stamp``."""
    if spec.is_generated:
        if not isinstance(stamp.get("generated"), dict) or not stamp["generated"]:
            return "not generated yet", False, False, 0
    elif stamp.get("built") != spec.build_version:
        if "built" in stamp:
            return (f"its cache was built by an older builder (version {stamp['built']}, now "
                    f"{spec.build_version})"), False, False, 0
        return "its cache is not built yet", False, False, 0
    record = stamp.get("cache")
    if not isinstance(record, dict):
        # stamped before cache files were recorded: record what is there (a generator's md5s are checked)
        names = sorted(stamp["generated"]) if spec.is_generated else _written_files(directory, spec)
        missing = [name for name in names if not (directory / name).is_file()]
        if missing:
            return f"cache file {missing[0]} is missing", True, False, 0
        if spec.is_generated:
            for name, expected in sorted(stamp["generated"].items()):
                actual = md5_file(directory / name)
                if actual != expected:
                    return (f"cache file {name} has md5 {actual}, expected {expected} (changed after it was "
                            f"made)"), True, False, 0
        stamp["cache"] = _record_cache(directory, names)
        return None, False, True, sum(entry["stat"][0] for entry in stamp["cache"].values())
    changed, checked = False, 0
    for name, entry in sorted(record.items()):
        path = directory / name
        if not isinstance(entry, dict) or not path.is_file():
            return f"cache file {name} is missing", True, changed, checked
        stat = _stat_key(path)
        recorded = entry.get("stat")
        if not full and stat == recorded:
            continue
        expected_size = entry.get("size", recorded[0] if isinstance(recorded, list) else None)
        if expected_size is not None and stat[0] != expected_size:
            changed |= recorded is not None
            entry["size"], entry["stat"] = expected_size, None  # damaged: never trusted on its stat again
            return (f"cache file {name} is {stat[0]:,} bytes, expected {expected_size:,} (changed after it was "
                    "built)"), True, changed, checked
        actual = _hash_file(path, CACHE_HASH)
        checked += stat[0]
        if actual != entry.get(CACHE_HASH):
            if recorded is not None:
                entry["size"], entry["stat"] = stat[0], None  # damaged: never trusted on its stat again
                changed = True
            return (f"cache file {name} has {CACHE_HASH} {actual}, expected {entry.get(CACHE_HASH)} (changed "
                    "after it was built)"), True, changed, checked
        if recorded != stat:
            entry["stat"] = stat
            entry.pop("size", None)
            changed = True
    return None, False, changed, checked


# --------------------------------------------------------------------------- staging


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_dead_staging(parent: Path, prefix: str) -> None:
    """Remove staging folders left by killed preparations of this host (their process is gone)."""
    with contextlib.suppress(OSError):
        for path in parent.iterdir():
            if not path.name.startswith(prefix) or not path.is_dir():
                continue
            parts = path.name[len(prefix):].rsplit("-", 2)
            if len(parts) == 3 and parts[0] == _host() and parts[1].isdigit() and not _alive(int(parts[1])):
                shutil.rmtree(path, ignore_errors=True)


def _make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; returns the folders it created, deepest last."""
    missing = []
    while not path.exists():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    created = []
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        created.append(folder)
    return created


@contextlib.contextmanager
def _staging(directory: Path) -> Iterator[Path]:
    """A hidden staging folder for ``directory`` on its file system: inside it if it exists (files
    are then moved in one by one), else beside it (renamed into place whole). Removed on exit; on
    failure the folders created for it (a new data root) go too."""
    inside = directory.is_dir()
    parent = directory if inside else directory.parent
    prefix = _STAGING if inside else f".{directory.name}{_STAGING}"
    try:
        created = _make_dirs(parent)
    except OSError as exc:
        raise DataError(f"cannot create the data folder {parent}: {exc.strerror or exc}") from exc
    try:
        _remove_dead_staging(parent, prefix)
        try:
            stage = Path(tempfile.mkdtemp(dir=parent, prefix=f"{prefix}{_host()}-{os.getpid()}-"))
        except OSError as exc:
            raise DataError(f"cannot write in the data folder {parent}: {exc.strerror or exc}") from exc
        try:
            yield stage
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise


def _new_dir_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _commit(stage: Path, directory: Path, spec: DataSource, stamp: dict, reused: frozenset[str] = frozenset()) -> None:
    """Move what ``stage`` holds into ``directory`` and write the stamp last. ``stamp`` gets the
    source files' entries here (their final stat); ``reused`` names files already in place."""
    for f in spec.files if "imported" not in stamp else ():
        where = directory / f.filename if f.filename in reused else stage / f.filename
        stamp[f.filename] = {"md5": _file_identity(f), "stat": _stat_key(where)}
    if not directory.exists():
        _save_stamp(stage, stamp)
        os.chmod(stage, _new_dir_mode())  # mkdtemp makes 0700; prepared data is meant to be shared
        try:
            os.rename(stage, directory)  # the whole dataset folder appears at once
            return
        except OSError:
            if not directory.is_dir():
                raise
        (stage / STAMP_NAME).unlink()  # made meanwhile by another process: move the files in below
    previous = _read_stamp(directory).get("cache")
    (directory / STAMP_NAME).unlink(missing_ok=True)  # from here on the folder is not trusted until the new stamp
    for path in sorted(stage.iterdir()):
        if path.name != STAMP_NAME and path.name not in reused:
            os.replace(path, directory / path.name)
    for stale in set(previous if isinstance(previous, dict) else ()) - set(stamp.get("cache", ())):
        with contextlib.suppress(OSError):
            (directory / stale).unlink()  # an older build's output the new one does not write
    _save_stamp(directory, stamp)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def _in_stage(stage: Path, directory: Path, what: str) -> Iterator[None]:
    """Errors of a builder, importer or generator running in ``stage`` as :class:`DataError`s that
    name the dataset folder rather than the staging folder."""
    try:
        yield
    except DataError as exc:
        raise DataError(str(exc).replace(str(stage), str(directory))) from exc
    except (OSError, ValueError) as exc:
        raise DataError(f"could not {what} in {directory}: {str(exc).replace(str(stage), str(directory))}") from exc


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
    log: Callable[[str], None] | None = None,
) -> Path:
    """Make dataset ``name`` available under ``root/name/`` and return that directory.

    ``source`` is a local directory or file (copied), or an http(s) URL of the file or of a
    directory prefix (downloaded); by default each file's official URL. Every file is checked
    against its md5 before it is moved into place; a mismatch raises :class:`DataError` naming
    both checksums and the source. Files already present and verified are kept unless ``force``;
    a cache that is missing, from an older builder or damaged is rebuilt from them (``log`` is
    told about damage). Nothing is moved into place unless everything succeeded.
    """
    spec = get_source(name)
    directory = dataset_dir(name, root)
    if spec.is_generated and source is not None:
        raise DataError(f"dataset {name!r} is generated offline and takes no --source")
    state = _inspect(directory, spec)
    if spec.is_generated:
        if force or not state.ready:
            if state.damaged and log is not None:
                log(f"dataset {name!r} in {directory}: {state.cache}; generating it again")
            _generate(spec, directory)
        return directory
    if not force and state.ready:
        return directory
    if not force and state.rebuildable:
        _rebuild(spec, directory, state, log)
        return directory
    if log is not None and state.present and (state.file_problems or state.damaged) and not force:
        log(f"dataset {name!r} in {directory}: {'; '.join(state.file_problems) or state.cache}; preparing it again")
    src = None if source is None else os.fspath(source)
    local = None
    if src is not None and not _is_url(src):
        local = Path(src).expanduser()
        if not local.exists():
            raise DataError(f"source {local} does not exist (expected a directory, a file or an http(s) URL)")
        if spec.import_local is not None and not _has_official_files(local, name, spec):
            return _import(spec, local, directory)
    if src is None and not spec.downloadable:
        if state.present:
            raise _not_ready(spec, directory, state, [])
        raise DataError(f"dataset {name!r} has no public download address; prepare it from a local copy: "
                        f"laptime data prepare {name} --source PATH")
    with _staging(directory) as stage:
        reused = frozenset() if force else frozenset(state.verified)
        for data_file in spec.files:
            if data_file.filename in reused:
                _link_or_copy(directory / data_file.filename, stage / data_file.filename)  # the build reads it
                continue
            if local is not None:
                tmp = _copy(_local_file(local, name, data_file, len(spec.files)), stage, data_file)
            else:
                url = data_file.url if src is None else _file_url(src, data_file)
                assert url is not None
                tmp = _download(url, stage, data_file, timeout)
            os.replace(tmp, stage / data_file.filename)
        _commit(stage, directory, spec, _build(spec, stage, directory), reused)
    return directory


def _build(spec: DataSource, stage: Path, directory: Path) -> dict:
    """Run the cache builder in ``stage``; returns the stamp's cache part."""
    if spec.build is None:
        return {}
    with _in_stage(stage, directory, f"build the cache of dataset {spec.name!r}"):
        spec.build(stage)
    return {"built": spec.build_version, "cache": _record_cache(stage, _written_files(stage, spec))}


def _rebuild(spec: DataSource, directory: Path, state: _State, log: Callable[[str], None] | None) -> None:
    """Build the cache again from the verified source files in ``directory`` (no download)."""
    if state.damaged and log is not None:
        log(f"dataset {spec.name!r} in {directory}: {state.cache}; rebuilding the cache from the verified source files")
    try:
        with _staging(directory) as stage:
            for f in spec.files:
                _link_or_copy(directory / f.filename, stage / f.filename)
            _commit(stage, directory, spec, _build(spec, stage, directory), frozenset(f.filename for f in spec.files))
    except DataError as exc:
        raise DataError(f"dataset {spec.name!r} in {directory}: {state.cache}, and rebuilding it from the source "
                        f"files failed: {exc}") from exc


def _generate(spec: DataSource, directory: Path) -> None:
    assert spec.generate is not None
    with _staging(directory) as stage:
        with _in_stage(stage, directory, f"generate dataset {spec.name!r}"):
            spec.generate(stage)
        made = _written_files(stage, spec)
        _commit(stage, directory, spec, {"generated": {n: md5_file(stage / n) for n in made},
                                         "cache": _record_cache(stage, made)})


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
    with _staging(directory) as stage:
        with _in_stage(stage, directory, f"import dataset {spec.name!r}"):
            what = spec.import_local(local, stage)
        stamp = {"imported": {"from": str(local.resolve()), "what": what}, "built": spec.build_version,
                 "cache": _record_cache(stage, _written_files(stage, spec))}
        _commit(stage, directory, spec, stamp)
    return directory


#: Where local dataset copies are looked for when ``$LAPTIME_DATA_SOURCES`` is not set (relative to
#: the working directory): a ``data`` folder, and a ``shared/data`` folder beside the checkout.
DEFAULT_SOURCE_DIRS = ("data", "../shared/data")


def local_source_dirs() -> list[Path]:
    """The directories listed in ``$LAPTIME_DATA_SOURCES``, else :data:`DEFAULT_SOURCE_DIRS`
    (existing ones only)."""
    raw = os.environ.get(SOURCES_ENV)
    candidates = raw.split(os.pathsep) if raw is not None else list(DEFAULT_SOURCE_DIRS)
    return [Path(p).expanduser() for p in candidates if p and Path(p).expanduser().is_dir()]


def _find_local_copy(spec: DataSource) -> tuple[Path | None, list[str]]:
    """The first verified copy of the dataset's files under the local source directories, and the
    copies that were there but failed their check (``"<path> fails its checksum: …"``)."""
    rejected: list[str] = []
    if not spec.files:
        return None, rejected
    for base in local_source_dirs():
        for folder in (spec.name, *spec.local_names):
            candidate = base / folder
            problems = []
            try:
                for f in spec.files:
                    path = _local_file(candidate, spec.name, f, len(spec.files))
                    problem = f.problem(path)
                    if problem is not None:
                        problems.append(f"{path} {problem}")
            except DataError:  # a file is not there: not a copy of this dataset
                continue
            if not problems:
                return candidate, rejected
            rejected.extend(problems)
    return None, rejected


def _fix(spec: DataSource, state: _State) -> str:
    """The command that makes the dataset usable again, in words."""
    name = spec.name
    if state.rebuildable:
        what = "generates it again" if spec.is_generated else "rebuilds it from the verified source files"
        return f"`laptime data prepare {name}` {what} (so does the next run)"
    if spec.downloadable:
        return (f"`laptime data prepare {name}` downloads it (md5-checked), or `laptime data prepare {name} "
                f"--source PATH|URL` copies it from a local copy or a mirror")
    if state.imported is not None and state.imported.get("from"):
        return f"import it again with `laptime data prepare {name} --source {state.imported['from']}`"
    return (f"it has no public download address: prepare it from a local copy with "
            f"`laptime data prepare {name} --source PATH`")


def _not_ready(spec: DataSource, directory: Path, state: _State, rejected: list[str]) -> DatasetNotReady:
    name = spec.name
    if not state.present:
        found = f"dataset {name!r} is not prepared in {directory}"
        if spec.files:
            found += f" (needs {', '.join(f.filename for f in spec.files)})"
    else:
        found = f"dataset {name!r} in {directory} is damaged: {'; '.join(state.file_problems) or state.cache}"
    if rejected:
        found += "; the local copy " + "; the local copy ".join(rejected)
        found += ", so it was not used" if len(rejected) == 1 else ", so they were not used"
    hint = (f" (set ${ROOT_ENV} to keep data elsewhere, or ${SOURCES_ENV} to folders holding "
            f"{name}/{spec.files[0].filename} copies)") if spec.files else ""
    return DatasetNotReady(f"{found}. Fix: {_fix(spec, state)}{hint}.", found, spec.downloadable)


def locate(name: str, root: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> Path:
    """The prepared directory of dataset ``name``; never downloads.

    A cache that is missing, from an older builder or damaged is rebuilt from the verified source
    files (``log`` is told about damage). If the dataset is not prepared (or a source file is
    damaged) but ``$LAPTIME_DATA_SOURCES`` holds a copy with the right checksums, it is copied in.
    Generated datasets are generated on first use. Otherwise raises :class:`DatasetNotReady`
    saying what was found — the damaged files, the local copies that failed their check, with
    both checksums — and how to prepare the dataset.
    """
    spec = get_source(name)
    directory = dataset_dir(name, root)
    if spec.is_generated:
        return prepare(name, root=root, log=log)
    state = _inspect(directory, spec)
    if state.ready:
        return directory
    if state.rebuildable:
        _rebuild(spec, directory, state, log)
        return directory
    local, rejected = _find_local_copy(spec)
    if local is not None:
        if log is not None and (rejected or state.present):
            what = "; ".join(state.file_problems) if state.present else "not prepared"
            skipped = "".join(f"; skipped the local copy {r}" for r in rejected)
            log(f"dataset {name!r}: {what}{skipped}; copying it from {local} (md5-checked)")
        return prepare(name, source=local, root=root)
    raise _not_ready(spec, directory, state, rejected)


def ensure(name: str, root: str | os.PathLike | None = None, download: bool = True,
           log: Callable[[str], None] | None = None) -> Path:
    """Make dataset ``name`` ready before a run: :func:`locate` (prepared, local copy or generated),
    else — when ``download`` and the dataset has public addresses — fetch it from its official
    URLs (md5-checked), after telling ``log`` what was found and what happens next.

    Raises :class:`DataError` with the commands that fix it when neither works.
    """
    try:
        return locate(name, root, log=log)
    except DatasetNotReady as missing:
        if not download or not missing.downloadable:
            raise
        if log is not None:
            log(f"{missing.summary}; downloading it from its official source (md5-checked)")
        try:
            return prepare(name, root=root)
        except DataError as failed:
            raise DataError(f"{missing} Downloading it failed too: {failed}") from failed


@dataclasses.dataclass(frozen=True)
class DatasetStatus:
    """One dataset's state under a data root, as :func:`check` and :func:`verify` see it.

    ``state``: ``prepared``; ``missing``; ``stale`` (the source files are verified but the cache
    is not built yet or comes from an older builder: the next preparation or run builds it);
    ``damaged`` (a source file or a cache file fails its check: ``fix`` says what repairs it — a
    damaged cache is rebuilt from verified source files without downloading). ``detail`` says
    what is wrong; ``checked_bytes`` how much was hashed.
    """

    name: str
    directory: Path
    state: str
    detail: str = ""
    fix: str = ""
    checked_bytes: int = 0


def _describe(spec: DataSource, directory: Path, state: _State) -> DatasetStatus:
    name, checked = spec.name, state.checked_bytes
    if state.ready:
        return DatasetStatus(name, directory, "prepared", checked_bytes=checked)
    if not state.present:
        fix = f"laptime data prepare {name}" + ("" if spec.downloadable or spec.is_generated else " --source PATH")
        return DatasetStatus(name, directory, "missing", "", fix, checked)
    if state.file_problems or state.damaged:
        return DatasetStatus(name, directory, "damaged", "; ".join(state.file_problems) or state.cache or "",
                             _fix(spec, state), checked)
    return DatasetStatus(name, directory, "stale", state.cache or "",
                         f"`laptime data prepare {name}` builds it (so does the next run)", checked)


def check(name: str, root: str | os.PathLike | None = None) -> DatasetStatus:
    """The state of dataset ``name`` by the cheap check (size and mtime; changed files re-hashed).
    Changes nothing but the stamp's record of what it checked."""
    spec = get_source(name)
    directory = dataset_dir(name, root)
    return _describe(spec, directory, _inspect(directory, spec))


def verify(name: str, root: str | os.PathLike | None = None) -> DatasetStatus:
    """The state of dataset ``name`` by the full check: every source file's md5 (or content) and
    every cache file's sha256 computed again, whatever their mtimes. Damage found is recorded in
    the stamp, so that :func:`prepare` (and the next run) repair it."""
    spec = get_source(name)
    directory = dataset_dir(name, root)
    return _describe(spec, directory, _inspect(directory, spec, full=True))


def status(root: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which datasets are prepared and usable as they are under ``root`` (cheap check; nothing is
    copied, built or generated)."""
    return {name: check(name, root).state == "prepared" for name in known_sources()}


__all__ = [
    "CACHE_HASH",
    "DataError",
    "DataFile",
    "DataSource",
    "DatasetNotReady",
    "DatasetStatus",
    "ENTRY_POINT_GROUP",
    "check",
    "data_root",
    "dataset_dir",
    "ensure",
    "get_source",
    "locate",
    "local_source_dirs",
    "md5_file",
    "plugin_sources",
    "prepare",
    "prepare_command",
    "SOURCES",
    "known_sources",
    "status",
    "verify",
]
