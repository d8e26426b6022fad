"""Plugins for suites and datasets (entry-point groups ``laptime.suites`` and ``laptime.datasets``),
from a fake distribution installed on ``sys.path`` for the test: a ``.dist-info`` folder with its
``entry_points.txt``, read by ``importlib.metadata`` as it reads any installed package."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
import warnings
from importlib.metadata import entry_points

import pytest

from laptime import data
from laptime.cli.main import main
from laptime.workloads.suites import default_suites, get_suite

from test_data import served  # noqa: F401 - the local HTTP server fixture

CONTENT = b"a plugin's data\n" * 64


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(module, source, entry_points)``: a distribution named ``module`` with one module."""
    installed = []

    def _install(module: str, source: str, entry_points_txt: str) -> None:
        site = tmp_path / f"site-{module}"
        site.mkdir()
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        info = site / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(textwrap.dedent(entry_points_txt))
        monkeypatch.syspath_prepend(str(site))  # also clears importlib's caches
        installed.append(module)

    yield _install
    for module in installed:
        sys.modules.pop(module, None)


GOOD = """
    from laptime.data import DataFile, DataSource
    from laptime.workloads.mnist1d import Mnist1DWorkload
    from laptime.workloads.suites import Suite

    SOURCE = DataSource("fakedata", (DataFile("fake.txt", {url!r}, {md5!r}),), "a plugin's dataset")


    class FakeWorkload(Mnist1DWorkload):  # MNIST-1D's model and data, and a dataset of its own to ensure
        name = "fakework"
        datasets = ("fakedata",)


    def suites():
        return [Suite("fakesuite", "a plugin's suite", (("fakework", "base", "cpu"),))]
"""

GOOD_ENTRY_POINTS = """
    [laptime.datasets]
    fakedata = laptime_fakeplugin:SOURCE

    [laptime.suites]
    fakesuite = laptime_fakeplugin:suites

    [laptime.workloads]
    fakework = laptime_fakeplugin:FakeWorkload
"""


def test_a_plugin_adds_a_suite_whose_workload_declares_a_plugin_dataset(install, served, laptime_data_root,  # noqa: F811
                                                                        tmp_path, capsys):
    www, url = served
    (www / "fake.txt").write_bytes(CONTENT)
    install("laptime_fakeplugin", GOOD.format(url=f"{url}/fake.txt", md5=hashlib.md5(CONTENT).hexdigest()),
            GOOD_ENTRY_POINTS)
    assert "laptime_fakeplugin:SOURCE" in [ep.value for ep in entry_points(group="laptime.datasets")]

    assert get_suite("fakesuite").entries == (("fakework", "base", "cpu"),)
    assert "smoke" in default_suites() and "fakesuite" not in default_suites(include_entry_points=False)
    assert data.get_source("fakedata").description == "a plugin's dataset"
    assert "fakedata" in data.known_sources() and "fakedata" not in data.SOURCES
    assert main(["data", "list"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "fakedata" in line]
    assert "missing" in line

    # the benchmark makes the suite's data ready before anything runs, as for built-in workloads
    assert not (laptime_data_root / "fakedata").exists()
    db, out = tmp_path / "r.sqlite", tmp_path / "report"
    assert main(["bench", "--suite", "fakesuite", "-a", "adamw", "--max-steps", "2", "--bootstrap", "0",
                 "--db", str(db), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == 1
    assert (laptime_data_root / "fakedata" / "fake.txt").read_bytes() == CONTENT
    assert main(["data", "verify", "fakedata"]) == 0
    assert "fakedata: ok" in capsys.readouterr().out


BAD = """
    from laptime.data import DataFile, DataSource
    from laptime.workloads.suites import Suite

    CLASH = DataSource("mnist1d", (DataFile("x.txt", None, "0" * 32),), "takes a built-in name")
    NOT_A_SOURCE = "fakedata"
    SMOKE = Suite("smoke", "takes a built-in name", (("mnist1d", "base", "cpu"),))


    def evil_source():
        return DataSource("../outside", (DataFile("x.txt", None, "0" * 32),), "a name that is not a folder")


    def bad_suite():
        return Suite("badsuite", "entries that are not triples", (("mnist1d", "base"),))
"""

BAD_ENTRY_POINTS = """
    [laptime.datasets]
    clash = laptime_badplugin:CLASH
    missing = laptime_badplugin:MISSING
    wrong = laptime_badplugin:NOT_A_SOURCE
    evil = laptime_badplugin:evil_source

    [laptime.suites]
    clash = laptime_badplugin:SMOKE
    bad = laptime_badplugin:bad_suite
"""


def test_broken_or_clashing_plugins_are_skipped_with_a_warning(install):
    install("laptime_badplugin", BAD, BAD_ENTRY_POINTS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sources = data.known_sources()
        suites = default_suites()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert sources["mnist1d"] is data.SOURCES["mnist1d"] and "../outside" not in sources
    assert suites["smoke"].description != "takes a built-in name" and "badsuite" not in suites
    for fragment in ["dataset plugin 'clash'", "'mnist1d' is already defined", "dataset plugin 'missing'",
                     "dataset plugin 'wrong'", "dataset plugin 'evil'", "it names a folder",
                     "suite plugin 'clash'", "'smoke' is already defined", "suite plugin 'bad'", "triples"]:
        assert any(fragment in m for m in messages), (fragment, messages)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the same plugins, read again
        with pytest.raises(data.DataError, match="unknown dataset 'mnist1e' \\(did you mean 'mnist1d'\\?\\)"):
            data.get_source("mnist1e")
