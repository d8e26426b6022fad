"""The README's own examples work as written."""

import json
import re
import shlex
from pathlib import Path

import pytest

from laptime.cli.main import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)


def readme_algorithm_files() -> dict[str, str]:
    """The files of the section "Writing an algorithm": ``my_algorithm.py`` and the JSON block after it."""
    blocks = _blocks(README.read_text())
    index = next(i for i, (lang, body) in enumerate(blocks) if lang == "python" and body.startswith("# my_algorithm.py"))
    files = {"my_algorithm.py": blocks[index][1]}
    space = re.search(r'search_space="([^"]+)"', files["my_algorithm.py"])
    if space:  # the example names a search space: the README must give it, as the next JSON block
        following = [body for lang, body in blocks[index + 1:] if lang == "json"]
        assert following, f"the README's my_algorithm.py names {space.group(1)} but the README does not give it"
        files[space.group(1)] = following[0]
    return files


def readme_bench_command() -> list[str]:
    """The tour's `laptime bench ... my_algorithm.py` line, as arguments."""
    for lang, body in _blocks(README.read_text()):
        for line in body.splitlines():
            command = line.split("#")[0].strip()
            if command.startswith("laptime bench") and "my_algorithm.py" in command:
                return shlex.split(command)[1:]
    raise AssertionError("the README has no `laptime bench ... my_algorithm.py` line")


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("ruleset", ["self", "external"])
def test_readme_algorithm_example_runs_as_written(capsys, tmp_path, monkeypatch, ruleset):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, text in readme_algorithm_files().items():
        (folder / name).write_text(text)
    if "my_space.json" in readme_algorithm_files():
        json.loads((folder / "my_space.json").read_text())  # the README's JSON is valid
    argv = readme_bench_command()
    # run from the folder of the files, as the README's reader would...
    monkeypatch.chdir(folder)
    extra = ["--max-steps", "20", "--bootstrap", "0", "--db", str(tmp_path / "r.sqlite"), "--out",
             str(tmp_path / "out"), "--json"]
    if ruleset == "external":
        extra += ["--ruleset", "external", "--studies", "1", "--trials", "1"]
    code, out, err = main(argv + extra), *capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert set(result["algorithms"]) == {"nadamw", "my_adamw"}
    assert result["trials"] == 4  # mnist1d and its cnn variant × 2 algorithms × 1 trial
    # ...and from elsewhere: the search space is read from the algorithm file's folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    argv = [str(folder / a) if a == "my_algorithm.py" else a for a in argv]
    code, out, err = main(argv + extra + ["--no-resume"]), *capsys.readouterr()
    assert code == 0, err
    assert set(json.loads(out)["algorithms"]) == {"nadamw", "my_adamw"}


@pytest.mark.usefixtures("one_thread")
def test_a_missing_search_space_only_matters_under_external_tuning(capsys, tmp_path):
    algo = tmp_path / "nospace.py"
    algo.write_text(readme_algorithm_files()["my_algorithm.py"].replace("my_space.json", "absent.json"))
    db = str(tmp_path / "r.sqlite")
    common = ["--suite", "mnist1d", "-a", str(algo), "--max-steps", "10", "--bootstrap", "0", "--db", db,
              "--out", str(tmp_path / "o"), "--json"]
    code, out, err = main(["bench", *common]), *capsys.readouterr()
    assert code == 0, err
    code, out, err = main(["run", "-w", "mnist1d", "-a", str(algo), "--max-steps", "5", "--db", db, "--json"]), \
        *capsys.readouterr()
    assert code == 0, err
    assert "absent.json" in err and "only under --ruleset external" in err  # said once, as a note
    code, _, err = main(["bench", *common, "--ruleset", "external", "--studies", "1", "--trials", "1"]), \
        *capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and "absent.json" in err and "Traceback" not in err
