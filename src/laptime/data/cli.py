"""``laptime data ...``: list and prepare datasets. ``main(argv)`` can be mounted by the main CLI;
``python -m laptime.data`` runs it directly. A user error prints one ``error: …`` line on stderr
and exits 2, as every other laptime command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from laptime.data.sources import DataError, data_root, dataset_dir, known_sources, prepare, status

#: The exit code of a user error (bad input, a missing or damaged dataset), as in ``laptime.cli``.
USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    p_prepare = sub.add_parser("prepare", help="copy or download a dataset (md5-checked) into the data root")
    p_prepare.add_argument("name", choices=sorted(known_sources()))
    p_prepare.add_argument("--source", help="local directory/file, or http(s) URL or URL prefix (default: official URL)")
    p_prepare.add_argument("--root", help="data root (default: $LAPTIME_DATA or ~/.cache/laptime/data)")
    p_prepare.add_argument("--force", action="store_true", help="fetch again even if already prepared")
    p_list = sub.add_parser("list", help="list datasets and whether they are prepared")
    p_list.add_argument("--root")


def run(args: argparse.Namespace) -> int:
    try:
        if args.data_command == "prepare":
            path = prepare(args.name, source=args.source, root=args.root, force=args.force)
            print(f"{args.name}: ready in {path}")
        else:
            ready = status(args.root)
            print(f"data root: {args.root or data_root()}")
            for name, source in sorted(known_sources().items()):
                mark = "prepared" if ready[name] else "missing "
                print(f"  {name:<16} {mark}  {dataset_dir(name, args.root)}  {source.description}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="laptime data", description="Prepare and list laptime datasets.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
