"""laptime.data: sources, checksummed download/copy, locate, the MNIST-1D cache."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from laptime import data
from laptime.data import DataError, DataFile, DataSource
from laptime.data import sources as sources_mod
from laptime.data.cli import main as data_cli

TOY = b"to be, or not to be\n" * 50
OTHER = b"that is the question\n" * 30


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def served(tmp_path):
    """A directory served over HTTP on 127.0.0.1 (ephemeral port): yields ``(directory, base_url)``."""
    directory = tmp_path / "www"
    directory.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield directory, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def toy_sources(monkeypatch):
    """Replace the source table with small made-up datasets; returns a setter for their URLs."""
    table = {}

    def set_urls(base_url: str = "http://127.0.0.1:9/unused") -> None:
        table.clear()
        table["toy"] = DataSource("toy", (DataFile("toy.txt", f"{base_url}/official/toy.txt", md5(TOY)),), "one file")
        table["pair"] = DataSource(
            "pair",
            (
                DataFile("a.txt", f"{base_url}/official/a.txt", md5(TOY)),
                DataFile("b.txt", f"{base_url}/official/b.txt", md5(OTHER)),
            ),
            "two files",
        )

    set_urls()
    monkeypatch.setattr(sources_mod, "SOURCES", table)
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")  # no local copies, not even the default dirs
    return set_urls


def rewrite(path: Path, content: bytes) -> None:
    """Write ``content`` with an mtime one second later (a rewrite within one clock tick may keep
    the old mtime, as the coarse file-system clock goes)."""
    before = path.stat().st_mtime_ns
    path.write_bytes(content)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def leftovers(directory: Path) -> list[str]:
    """Temporary or partial files left in a dataset directory."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith((".part", ".tmp"))) if directory.exists() else []


# --------------------------------------------------------------------------- data_root


def test_data_root_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LAPTIME_DATA", str(tmp_path / "here"))
    assert data.data_root() == tmp_path / "here"


def test_data_root_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("LAPTIME_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_root() == tmp_path / "xdg" / "laptime" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.data_root() == Path.home() / ".cache" / "laptime" / "data"


def test_session_uses_a_temporary_root(laptime_data_root):
    assert data.data_root() == laptime_data_root
    assert ".cache" not in str(laptime_data_root)


def test_real_sources_table():
    shakespeare = data.get_source("tinyshakespeare")
    (only,) = shakespeare.files
    assert only.filename == "input.txt"
    assert only.md5 == "6fb458f1232090904fb40fe944165e91"
    assert only.url == "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    assert data.get_source("mnist1d").is_generated
    with pytest.raises(DataError, match="known datasets: .*mnist1d.*tinyshakespeare"):
        data.get_source("tinyshakespear")


# --------------------------------------------------------------------------- downloads


def test_download_full_url_and_checksum_ok(served, toy_sources, tmp_path):
    www, url = served
    (www / "toy.txt").write_bytes(TOY)
    path = data.prepare("toy", source=f"{url}/toy.txt", root=tmp_path / "root")
    assert path == tmp_path / "root" / "toy"
    assert (path / "toy.txt").read_bytes() == TOY
    assert leftovers(path) == []


def test_download_from_official_url_by_default(served, toy_sources, tmp_path):
    www, url = served
    toy_sources(url)
    (www / "official").mkdir()
    (www / "official" / "toy.txt").write_bytes(TOY)
    path = data.prepare("toy", root=tmp_path)
    assert (path / "toy.txt").read_bytes() == TOY
    assert data.locate("toy", root=tmp_path) == path


def test_download_from_url_prefix_fetches_every_file(served, toy_sources, tmp_path):
    www, url = served
    (www / "mirror").mkdir()
    (www / "mirror" / "a.txt").write_bytes(TOY)
    (www / "mirror" / "b.txt").write_bytes(OTHER)
    for prefix in (f"{url}/mirror", f"{url}/mirror/"):
        path = data.prepare("pair", source=prefix, root=tmp_path / prefix[-1], force=True)
        assert (path / "a.txt").read_bytes() == TOY
        assert (path / "b.txt").read_bytes() == OTHER


def test_checksum_mismatch_raises_and_leaves_nothing(served, toy_sources, tmp_path):
    www, url = served
    (www / "toy.txt").write_bytes(TOY + b"tampered")
    with pytest.raises(DataError) as info:
        data.prepare("toy", source=f"{url}/toy.txt", root=tmp_path)
    message = str(info.value)
    assert md5(TOY) in message and md5(TOY + b"tampered") in message
    assert f"{url}/toy.txt" in message
    directory = tmp_path / "toy"
    assert not (directory / "toy.txt").exists()
    assert leftovers(directory) == []
    with pytest.raises(DataError):  # and it is not considered prepared
        data.locate("toy", root=tmp_path)


def test_http_404_raises(served, toy_sources, tmp_path):
    _, url = served
    with pytest.raises(DataError, match="HTTP 404") as info:
        data.prepare("toy", source=f"{url}/missing/toy.txt", root=tmp_path)
    assert f"{url}/missing/toy.txt" in str(info.value)
    assert not (tmp_path / "toy" / "toy.txt").exists()
    assert leftovers(tmp_path / "toy") == []


def test_connection_refused_raises(toy_sources, tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError, match="download of 'toy.txt' failed"):
        data.prepare("toy", source=f"http://127.0.0.1:{port}/toy.txt", root=tmp_path)


def test_stalled_server_times_out(toy_sources, tmp_path):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(DataError, match="timed out|failed"):
            data.prepare("toy", source=f"http://127.0.0.1:{port}/toy.txt", root=tmp_path, timeout=0.5)
    assert leftovers(tmp_path / "toy") == []


def test_corrupt_existing_file_is_replaced(served, toy_sources, tmp_path):
    www, url = served
    (www / "toy.txt").write_bytes(TOY)
    directory = tmp_path / "toy"
    directory.mkdir()
    (directory / "toy.txt").write_bytes(b"garbage")
    data.prepare("toy", source=url, root=tmp_path)
    assert (directory / "toy.txt").read_bytes() == TOY


# --------------------------------------------------------------------------- local copies


def test_local_copy_from_directory_and_file(toy_sources, tmp_path):
    src = tmp_path / "src"
    (src / "toy").mkdir(parents=True)
    (src / "toy" / "toy.txt").write_bytes(TOY)
    # a directory holding the file, a directory holding <name>/<file>, and the file itself
    for i, source in enumerate([src / "toy", src, src / "toy" / "toy.txt"]):
        path = data.prepare("toy", source=source, root=tmp_path / f"r{i}")
        assert (path / "toy.txt").read_bytes() == TOY


def test_local_copy_checksum_mismatch(toy_sources, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"not the file")
    with pytest.raises(DataError) as info:
        data.prepare("toy", source=bad, root=tmp_path / "root")
    assert md5(TOY) in str(info.value) and md5(b"not the file") in str(info.value)
    assert str(bad) in str(info.value)
    assert not (tmp_path / "root" / "toy" / "toy.txt").exists()
    assert leftovers(tmp_path / "root" / "toy") == []


def test_local_source_missing(toy_sources, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.prepare("toy", source=tmp_path / "nowhere", root=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no file 'a.txt'"):
        data.prepare("pair", source=tmp_path / "empty", root=tmp_path)


# --------------------------------------------------------------------------- locate


def test_locate_error_tells_the_command(toy_sources, tmp_path):
    with pytest.raises(DataError) as info:
        data.locate("toy", root=tmp_path)
    message = str(info.value)
    assert "laptime data prepare toy" in message
    assert "laptime data prepare toy --source PATH|URL" in message
    assert str(tmp_path / "toy") in message


def test_locate_copies_from_laptime_data_sources(toy_sources, tmp_path, monkeypatch):
    bad, good = tmp_path / "bad", tmp_path / "good"
    (bad / "toy").mkdir(parents=True)
    (bad / "toy" / "toy.txt").write_bytes(b"wrong")  # wrong md5: must be skipped
    (good / "toy").mkdir(parents=True)
    (good / "toy" / "toy.txt").write_bytes(TOY)
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", str(bad))
    with pytest.raises(DataError):
        data.locate("toy", root=tmp_path / "root")
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", f"{bad}{__import__('os').pathsep}{good}")
    path = data.locate("toy", root=tmp_path / "root")
    assert (path / "toy.txt").read_bytes() == TOY
    assert path == tmp_path / "root" / "toy"


def test_locate_notices_a_file_changed_after_preparation(toy_sources, tmp_path):
    src = tmp_path / "toy.txt"
    src.write_bytes(TOY)
    path = data.prepare("toy", source=src, root=tmp_path)
    assert data.locate("toy", root=tmp_path) == path
    (path / "toy.txt").write_bytes(TOY[:-1] + b"!")
    with pytest.raises(DataError, match="fails its checksum"):
        data.locate("toy", root=tmp_path)


def test_cli_prepare_and_list(toy_sources, tmp_path, capsys):
    src = tmp_path / "toy.txt"
    src.write_bytes(TOY)
    assert data_cli(["prepare", "toy", "--source", str(src), "--root", str(tmp_path / "r")]) == 0
    assert data_cli(["list", "--root", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "prepared" in out
    assert data_cli(["prepare", "pair", "--source", str(src), "--root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


# --------------------------------------------------------------------------- real datasets


def test_prepare_real_tinyshakespeare_from_shared_copy(shared_data_dir, tmp_path):
    path = data.prepare("tinyshakespeare", source=shared_data_dir, root=tmp_path)
    text = (path / "input.txt").read_bytes()
    assert len(text) == 1_115_394
    assert md5(text) == "6fb458f1232090904fb40fe944165e91"
    assert text.startswith(b"First Citizen:")


def test_locate_real_tinyshakespeare_via_sources_env(shared_data_dir, laptime_data_root):
    path = data.locate("tinyshakespeare")
    assert path == laptime_data_root / "tinyshakespeare"
    assert data.md5_file(path / "input.txt") == "6fb458f1232090904fb40fe944165e91"


def test_mnist1d_generated_cached_and_checked(laptime_data_root):
    from laptime.data import mnist1d as mnist1d_data

    np_state = np.random.get_state()
    arrays = mnist1d_data.load()
    assert np.array_equal(np.random.get_state()[1], np_state[1]), "generation must not reseed numpy's global RNG"
    assert arrays["x"].shape == (4000, 40) and arrays["x_test"].shape == (1000, 40)
    assert arrays["y"].shape == (4000,) and arrays["y_test"].shape == (1000,)
    assert set(np.unique(arrays["y"])) == set(range(10))
    assert (laptime_data_root / "mnist1d" / mnist1d_data.FILENAME).is_file()
    assert data.status()["mnist1d"]
    tampered = dict(arrays, y=arrays["y"][::-1].copy())
    with pytest.raises(DataError, match="not the standard dataset"):
        mnist1d_data.check_fingerprint(tampered)
    assert data.prepare("mnist1d") == laptime_data_root / "mnist1d"  # already there: not regenerated
    with pytest.raises(DataError, match="takes no --source"):
        data.prepare("mnist1d", source="/somewhere")


def test_default_local_source_dirs_when_the_variable_is_unset(tmp_path, monkeypatch):
    from laptime.data.sources import local_source_dirs

    monkeypatch.delenv("LAPTIME_DATA_SOURCES", raising=False)
    work = tmp_path / "checkout"
    (work / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert [p.resolve() for p in local_source_dirs()] == [(work / "data").resolve(),
                                                          (tmp_path / "shared" / "data").resolve()]
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    assert local_source_dirs() == []


def test_cache_builds_once_and_an_import_is_replaced_by_the_official_files(monkeypatch, tmp_path):
    """The generic cache builder and local importer: a build runs once per build_version; a forced
    prepare from the official files after an import leaves no stale 'imported' mark behind."""
    import dataclasses
    import json

    builds = []

    def build(directory):
        builds.append(directory)
        (directory / "cache.txt").write_bytes((directory / "toy.txt").read_bytes().upper())

    def import_local(source, directory):
        (directory / "cache.txt").write_bytes((source / "alt.txt").read_bytes().upper())
        return "one alternative file"

    source = DataSource("toy", (DataFile("toy.txt", None, md5(TOY)),), "one file", build=build,
                        import_local=import_local)
    monkeypatch.setattr(sources_mod, "SOURCES", {"toy": source})
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    root = tmp_path / "root"
    other_layout = tmp_path / "other"
    other_layout.mkdir()
    (other_layout / "alt.txt").write_bytes(TOY)
    official = tmp_path / "official"
    official.mkdir()
    (official / "toy.txt").write_bytes(TOY)

    prepare, locate = data.prepare, data.locate
    directory = prepare("toy", source=other_layout, root=root)
    stamp = json.loads((directory / sources_mod.STAMP_NAME).read_text())
    assert stamp["imported"]["what"] == "one alternative file" and builds == []
    assert locate("toy", root=root) == directory  # the imported cache counts as the dataset

    prepare("toy", source=official, root=root, force=True)
    stamp = json.loads((directory / sources_mod.STAMP_NAME).read_text())
    assert "imported" not in stamp and stamp["built"] == "1" and len(builds) == 1
    assert (directory / "cache.txt").read_bytes() == TOY.upper()
    locate("toy", root=root)
    assert len(builds) == 1  # built once
    monkeypatch.setattr(sources_mod, "SOURCES", {"toy": dataclasses.replace(source, build_version="2")})
    locate("toy", root=root)
    assert len(builds) == 2  # a new builder version rebuilds
    with pytest.raises(DataError, match="no public download address"):
        prepare("toy", root=tmp_path / "elsewhere")


# --------------------------------------------------------------------------- the data layer's rough edges


def test_a_damaged_local_copy_is_named_with_both_checksums_and_what_happens_next(served, toy_sources, tmp_path,
                                                                                 monkeypatch):
    www, url = served
    toy_sources(url)
    (www / "official").mkdir()
    (www / "official" / "toy.txt").write_bytes(TOY)
    bad = tmp_path / "copies" / "toy" / "toy.txt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"wrong")
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", str(tmp_path / "copies"))
    root = tmp_path / "root"

    with pytest.raises(DataError) as info:  # locate never downloads: it says what it found
        data.locate("toy", root=root)
    message = str(info.value)
    assert str(bad) in message and md5(TOY) in message and md5(b"wrong") in message, message
    assert "not used" in message and "laptime data prepare toy" in message and "\n" not in message

    logs = []  # ensure (before a run) says it too, and that it downloads instead
    assert sources_mod.ensure("toy", root=root, log=logs.append) == root / "toy"
    assert len(logs) == 1 and str(bad) in logs[0] and md5(b"wrong") in logs[0] and md5(TOY) in logs[0], logs
    assert "downloading it from its official source" in logs[0]
    assert (root / "toy" / "toy.txt").read_bytes() == TOY


def test_a_damaged_prepared_file_is_named_and_fetched_again(served, toy_sources, tmp_path, capsys):
    www, url = served
    toy_sources(url)
    (www / "official").mkdir()
    (www / "official" / "toy.txt").write_bytes(TOY)
    root = tmp_path / "root"
    directory = data.prepare("toy", root=root)
    (directory / "toy.txt").write_bytes(b"rotten")
    logs = []
    assert sources_mod.ensure("toy", root=root, log=logs.append) == directory
    assert len(logs) == 1 and "toy.txt fails its checksum" in logs[0] and md5(b"rotten") in logs[0], logs
    assert "downloading" in logs[0] and "not prepared" not in logs[0]  # not two stories about one folder
    assert (directory / "toy.txt").read_bytes() == TOY


@pytest.fixture
def built_toy(monkeypatch, tmp_path):
    """A one-file source with a cache builder (``cache.txt``: the file upper-cased), prepared from a
    local file. Returns ``(root, directory, builds)``."""
    builds = []

    def build(directory):
        builds.append(directory)
        (directory / "cache.txt").write_bytes((directory / "toy.txt").read_bytes().upper())

    source = DataSource("toy", (DataFile("toy.txt", "http://127.0.0.1:9/toy.txt", md5(TOY)),), "one file, cached",
                        build=build)
    monkeypatch.setattr(sources_mod, "SOURCES", {"toy": source})
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    src = tmp_path / "src" / "toy.txt"
    src.parent.mkdir()
    src.write_bytes(TOY)
    root = tmp_path / "root"
    directory = data.prepare("toy", source=src, root=root)
    assert len(builds) == 1 and (directory / "cache.txt").read_bytes() == TOY.upper()
    return root, directory, builds


def test_a_damaged_cache_is_one_clear_message_and_prepare_rebuilds_it(built_toy, capsys):
    root, directory, builds = built_toy
    (directory / "cache.txt").write_bytes(b"garbage")
    assert data_cli(["list", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.split()[:1] == ["toy"]]
    assert "DAMAGED" in line and "prepared" not in line, out
    assert "cache file cache.txt is 7 bytes, expected 1,000" in out and "`laptime data prepare toy` rebuilds" in out
    assert not data.status(root)["toy"]

    assert data_cli(["prepare", "toy", "--root", str(root)]) == 0  # no --force, no download: a rebuild
    out, err = capsys.readouterr()
    assert out == f"toy: ready in {directory}\n"
    assert err.count("\n") == 1 and "cache file cache.txt is 7 bytes" in err and "rebuilding the cache" in err, err
    assert (directory / "cache.txt").read_bytes() == TOY.upper() and len(builds) == 2
    assert data.status(root)["toy"]


def test_a_run_rebuilds_a_damaged_cache_before_it_starts(built_toy):
    root, directory, builds = built_toy
    rewrite(directory / "cache.txt", TOY.lower())  # same size, other content
    logs = []
    assert sources_mod.ensure("toy", root=root, log=logs.append) == directory  # what `laptime run` calls first
    assert (directory / "cache.txt").read_bytes() == TOY.upper() and len(builds) == 2
    expected = hashlib.sha256(TOY.upper()).hexdigest()
    assert len(logs) == 1 and "cache.txt" in logs[0] and expected in logs[0] and "rebuilding" in logs[0], logs


def test_the_cache_is_checked_by_content_cheaply_at_open_and_in_full_on_demand(built_toy, tmp_path, capsys):
    root, directory, builds = built_toy
    cache = directory / "cache.txt"
    stamp = json.loads((directory / sources_mod.STAMP_NAME).read_text())
    assert stamp["cache"]["cache.txt"]["sha256"] == hashlib.sha256(TOY.upper()).hexdigest()

    # same size, other content (a new mtime): the cheap check hashes the changed file
    rewrite(cache, TOY.upper()[:-1] + b"?")
    state = data.check("toy", root)
    assert state.state == "damaged" and hashlib.sha256(TOY.upper()[:-1] + b"?").hexdigest() in state.detail
    data.prepare("toy", root=root)
    assert data.check("toy", root).state == "prepared"

    # bit rot: other content, same size and mtime. The cheap check trusts them (by design: it costs
    # a stat per file); the full check hashes everything, and what it finds is remembered.
    before = cache.stat()
    with open(cache, "r+b") as handle:
        handle.seek(10)
        handle.write(b"#")
    os.utime(cache, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert data.check("toy", root).state == "prepared"
    assert data_cli(["verify", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "cache file cache.txt has sha256" in err and "laptime data prepare toy" in err
    assert data.check("toy", root).state == "damaged"
    data.prepare("toy", root=root)
    assert cache.read_bytes() == TOY.upper() and len(builds) == 3
    assert data_cli(["verify", "toy", "--root", str(root)]) == 0
    assert "toy: ok" in capsys.readouterr().out

    # a copy of the folder (new mtimes, same bytes) is accepted once hashed, and its stamp refreshed
    copy_root = tmp_path / "copy"
    shutil.copytree(directory, copy_root / "toy", copy_function=shutil.copy)
    assert data.check("toy", copy_root).state == "prepared"
    assert data.locate("toy", root=copy_root) == copy_root / "toy" and len(builds) == 3
    assert data_cli(["verify", "nosuch", "--root", str(root)]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err


def test_a_stamp_from_before_cache_records_is_completed_on_first_open(built_toy):
    root, directory, builds = built_toy
    stamp_path = directory / sources_mod.STAMP_NAME
    stamp = json.loads(stamp_path.read_text())
    del stamp["cache"]
    stamp_path.write_text(json.dumps(stamp))
    assert data.locate("toy", root=root) == directory and len(builds) == 1  # no rebuild
    assert json.loads(stamp_path.read_text())["cache"]["cache.txt"]["sha256"] == hashlib.sha256(TOY.upper()).hexdigest()


def test_a_failed_prepare_leaves_no_folder_behind(served, toy_sources, tmp_path):
    www, url = served
    root = tmp_path / "root"
    with pytest.raises(DataError, match="HTTP 404"):
        data.prepare("toy", source=f"{url}/missing/toy.txt", root=root)
    assert not (root / "toy").exists()
    assert not root.exists()  # made for this preparation only: removed with it
    # all or nothing: a.txt downloads and verifies, b.txt does not, so neither is kept
    (www / "mirror").mkdir()
    (www / "mirror" / "a.txt").write_bytes(TOY)
    (www / "mirror" / "b.txt").write_bytes(OTHER + b"tampered")
    root.mkdir()
    with pytest.raises(DataError, match="checksum mismatch for 'b.txt'"):
        data.prepare("pair", source=f"{url}/mirror", root=root)
    assert list(root.iterdir()) == []


def test_a_failed_build_leaves_nothing_half_made(monkeypatch, tmp_path):
    fail = {"now": True}

    def build(directory):
        (directory / "cache.txt").write_bytes(b"half")
        if fail["now"]:
            raise OSError(28, "No space left on device")
        (directory / "cache.txt").write_bytes((directory / "toy.txt").read_bytes().upper())

    source = DataSource("toy", (DataFile("toy.txt", None, md5(TOY)),), "one file, cached", build=build)
    monkeypatch.setattr(sources_mod, "SOURCES", {"toy": source})
    monkeypatch.setenv("LAPTIME_DATA_SOURCES", "")
    src = tmp_path / "toy.txt"
    src.write_bytes(TOY)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(DataError, match="No space left on device") as info:
        data.prepare("toy", source=src, root=root)
    assert "staging" not in str(info.value) and str(root / "toy") in str(info.value)
    assert list(root.iterdir()) == []  # no dataset folder, no staging folder

    fail["now"] = False
    directory = data.prepare("toy", source=src, root=root)
    stamp = (directory / sources_mod.STAMP_NAME).read_text()
    # a new builder version that fails: the prepared folder stays as it was, nothing is added
    fail["now"] = True
    monkeypatch.setattr(sources_mod, "SOURCES", {"toy": dataclasses.replace(source, build_version="2")})
    with pytest.raises(DataError, match="rebuilding it from the source files failed"):
        data.locate("toy", root=root)
    assert sorted(p.name for p in directory.iterdir()) == [sources_mod.STAMP_NAME, "cache.txt", "toy.txt"]
    assert (directory / "cache.txt").read_bytes() == TOY.upper()
    assert (directory / sources_mod.STAMP_NAME).read_text() == stamp


def test_staging_folders_of_killed_preparations_are_removed(toy_sources, tmp_path):
    src = tmp_path / "toy.txt"
    src.write_bytes(TOY)
    root = tmp_path / "root"
    root.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()
    host = sources_mod._host()
    dead = root / f".toy.staging-{host}-{finished.pid}-abc123"
    live = root / f".toy.staging-{host}-{os.getpid()}-def456"
    other_host = root / f".toy.staging-elsewhere-{finished.pid}-ghi789"
    for folder in (dead, live, other_host):
        folder.mkdir()
        (folder / "toy.txt").write_bytes(b"half")
    data.prepare("toy", source=src, root=root)
    assert not dead.exists() and live.exists() and other_host.exists()


def test_data_prepare_errors_exit_2_with_one_line(toy_sources, tmp_path, capsys):
    from laptime.cli.main import main

    for argv, fragment in [
        (["data", "prepare", "nosuch"], "unknown dataset 'nosuch'"),
        (["data", "prepare", "toy", "--source", str(tmp_path / "nowhere")], "does not exist"),
        (["data", "prepare", "toy", "--source", "http://127.0.0.1:9/toy.txt", "--root", str(tmp_path)],
         "download of 'toy.txt' failed"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, err
        assert "Traceback" not in err
