"""Run real AlgoPerf submissions through laptime and tabulate what happens (docs/algoperf.md).

    python benchmarks/algoperf_submissions.py ROOT [ROOT ...] [--workload mnist1d] [--max-steps 50]

Each ROOT is a checkout (or extracted copy) of a repository holding submissions, e.g. AlgoPerf's
``algorithmic-efficiency`` or ``submissions_algorithms``; every ``submission.py`` and
``pytorch_*.py``/``jax_*.py`` file under it that has ``update_params`` and ``get_batch_size``
(defined or imported) is a submission, JAX ones included (laptime refuses them, in one line). Each
is run from its ROOT (as AlgoPerf's runner runs from the repository root, so imports from there
work) with

    python -m laptime run -w WORKLOAD -a FILE --budget steps --max-steps N --json \
        [--search-space F]

where F is the ``tuning_search_space.json`` of the folder above when the file sits in AlgoPerf's
``<algorithm>/pytorch/`` or ``<name>/<name>_pytorch/`` layouts (one beside the file is found by
laptime itself). An external-tuning submission then trains with the first point of its search
space. Prints a markdown table row per file: status (runs / refused / fails), why, the batch size
used and the steps trained (``--json``: one JSON object per file). A trial stopped by
:class:`laptime.algorithms.algoperf.SubmissionUnsupported` (CUDA hard-coded, several processes)
counts as refused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def submissions(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name != "submission.py" and not re.match(r"(pytorch|jax)_.*\.py$", path.name):
            continue
        text = path.read_text(errors="replace")
        if "update_params" in text and "get_batch_size" in text:  # defined or imported (target-setting ones)
            found.append(path)
    return found


def framework(path: Path) -> str:
    text = path.read_text(errors="replace")
    if re.search(r"^\s*(import|from) (jax|optax|flax)\b", text, re.M):
        return "jax"
    return "pytorch" if re.search(r"^\s*(import|from) torch\b", text, re.M) else "none"


def run_one(root: Path, path: Path, workload: str, max_steps: int, db: Path) -> dict:
    command = [sys.executable, "-m", "laptime", "run", "-w", workload, "-a", str(path.relative_to(root)),
               "--budget", "steps", "--max-steps", str(max_steps), "--json", "--db", str(db)]
    above = path.parent.parent / "tuning_search_space.json"
    if path.parent.name.endswith("pytorch") and above.is_file():  # <algorithm>/pytorch/, <name>/<name>_pytorch/
        command += ["--search-space", str(above.relative_to(root))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    shown = " ".join("laptime" if i < 3 else a for i, a in enumerate(command) if i >= 2)
    result = {"file": str(path.relative_to(root)), "command": shown, "code": proc.returncode}
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")] or proc.stderr.splitlines()
        result.update(status="refused" if proc.returncode == 2 else "fails", why=(lines[-1] if lines else "?"))
        return result
    out = json.loads(proc.stdout)
    result.update(batch_size=out.get("batch_size"), steps=out["steps"],
                  accuracy=out["final_metrics"].get("validation/accuracy"))
    if out["outcome"] == "failed":
        last = (out["error"] or "").strip().splitlines()[-1]
        result.update(status="refused" if "SubmissionUnsupported" in last else "fails", why=last)
    else:
        result.update(status="runs", why=out["outcome"])
    notes = [line for line in proc.stderr.splitlines() if "warning" in line.lower() or line.startswith("note:")]
    result["notes"] = notes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path)
    parser.add_argument("--workload", default="mnist1d")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the results as JSON lines")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "results.sqlite"
        for root in args.roots:
            root = root.resolve()
            for path in submissions(root):
                result = run_one(root, path, args.workload, args.max_steps, db)
                result.update(root=root.name, framework=framework(path))
                if args.json:
                    print(json.dumps(result), flush=True)
                else:
                    print(f"| {root.name}/{result['file']} | {result['status']} | {result['why']} | "
                          f"{result.get('batch_size', '')} | {result.get('steps', '')} |", flush=True)


if __name__ == "__main__":
    main()
