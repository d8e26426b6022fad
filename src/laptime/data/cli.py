"""``laptime data ...``: list, prepare and verify datasets. ``main(argv)`` can be mounted by the main
CLI; ``python -m laptime.data`` runs it directly. A user error prints one ``error: …`` line on
stderr and exits 2, as every other laptime command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# laptime.data.sources (urllib, hashing, the plugins' datasets) is imported when a data command runs,
# not when the main CLI builds its parser: `laptime list` does not pay for it

#: The exit code of a user error (bad input, a missing or damaged dataset), as in ``laptime.cli``.
USAGE_ERROR = 2

_MARKS = {"prepared": "prepared", "missing": "missing", "stale": "to build", "damaged": "DAMAGED"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    p_prepare = sub.add_parser("prepare", help="copy or download a dataset (md5-checked) into the data root")
    p_prepare.add_argument("name", help="dataset name (`laptime data list` shows them)")
    p_prepare.add_argument("--source", help="local directory/file, or http(s) URL or URL prefix (default: official URL)")
    p_prepare.add_argument("--root", help="data root (default: $LAPTIME_DATA or ~/.cache/laptime/data)")
    p_prepare.add_argument("--force", action="store_true", help="fetch again even if already prepared")
    p_list = sub.add_parser("list", help="list datasets and whether they are prepared (quick check: sizes and "
                                         "mtimes; files that changed are hashed again)")
    p_list.add_argument("--root")
    p_verify = sub.add_parser("verify", help="hash every file of prepared datasets again (md5 of the source files, "
                                             "sha256 of the cache), whatever their mtimes")
    p_verify.add_argument("names", nargs="*", metavar="NAME", help="datasets to verify (default: every prepared one)")
    p_verify.add_argument("--root")


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _list(args: argparse.Namespace) -> None:
    from laptime.data import sources

    print(f"data root: {args.root or sources.data_root()}")
    for name, source in sorted(sources.known_sources().items()):
        state = sources.check(name, args.root)
        print(f"  {name:<16} {_MARKS[state.state]:<8}  {state.directory}  {source.description}")
        if state.state not in ("prepared", "missing"):
            print(f"  {'':<16} {state.detail}; fix: {state.fix}")


def _verify(args: argparse.Namespace) -> int:
    from laptime.data import sources

    for name in args.names:
        sources.get_source(name)  # an unknown name is an error before anything is hashed
    names = args.names or [name for name in sorted(sources.known_sources())
                           if sources.dataset_dir(name, args.root).is_dir()]
    problems = []
    for name in names:
        state = sources.verify(name, args.root)
        if state.state == "prepared":
            print(f"{name}: ok ({state.checked_bytes / 1e6:,.1f} MB hashed) in {state.directory}")
        elif state.state == "stale":
            print(f"{name}: source files ok; {state.detail}: {state.fix}")
        elif state.state == "missing" and not args.names:
            continue
        elif state.state == "missing":
            problems.append(f"dataset {name!r} is not prepared in {state.directory}: run `{state.fix}`")
        else:
            problems.append(f"dataset {name!r} in {state.directory} is damaged: {state.detail}. Fix: {state.fix}")
    if not names:
        print(f"no prepared dataset in {args.root or sources.data_root()}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return USAGE_ERROR if problems else 0


def run(args: argparse.Namespace) -> int:
    from laptime.data import sources

    try:
        if args.data_command == "prepare":
            path = sources.prepare(args.name, source=args.source, root=args.root, force=args.force, log=_log)
            print(f"{args.name}: ready in {path}")
        elif args.data_command == "verify":
            return _verify(args)
        else:
            _list(args)
    except sources.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laptime data", description="Prepare, list and verify laptime datasets.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
