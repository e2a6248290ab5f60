"""python -m tinyae.exercises start DIR | check DIR [NAME]  (see tinyae/exercises/__init__.py)."""
from __future__ import annotations

import argparse
import pathlib
import sys

from . import EXERCISES, FAILED, ExerciseError, check, find, start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyae.exercises",
                                     description="Backpropagation exercises with a checker that names the mistake.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="write the exercise files into DIR").add_argument("dir", type=pathlib.Path)
    p = sub.add_parser("check", help="check the exercises in DIR (or only NAME): one line each")
    p.add_argument("dir", type=pathlib.Path)
    p.add_argument("name", nargs="?", help="one exercise: its number, name (linear, …) or file")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            return _start(args.dir)
        return _check(args.dir, args.name)
    except ExerciseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _start(folder) -> int:
    written = start(folder)
    print(f"wrote {len(written)} exercises into {folder}:")
    for path in written:
        print(f"  {path.name}")
    print(f"open {written[0].name}, write its backward, then: python -m tinyae.exercises check {folder}")
    return 0


def _check(folder, name) -> int:
    if not folder.is_dir():
        raise ExerciseError(f"{folder} is not a folder (python -m tinyae.exercises start {folder} makes one)")
    chosen = [find(name)] if name else EXERCISES
    width = max(len(e.file) for e in chosen)
    counts = {}
    for e in chosen:
        status, message = check(folder, e)
        counts[status] = counts.get(status, 0) + 1
        print(f"{e.file:<{width}}  {status}{': ' + message if message else ''}", flush=True)
    if len(chosen) > 1:
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if counts.get(FAILED) else 0


if __name__ == "__main__":
    sys.exit(main())
