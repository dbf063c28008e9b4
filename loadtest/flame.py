"""Summarise a py-spy profile (``--format raw``, collapsed stacks) as text.

    py-spy record --pid PID --duration 15 --format raw --output prof.txt --nonblocking
    python -m loadtest.flame prof.txt [--top 25] [--filter rooms/]

Prints the functions with the most samples on CPU themselves (self) and including what
they call (inclusive), as percentages of all samples: a flame graph in a table, for
docs/performance.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


# This checkout's own modules (rooms/, server/, ...) are named from here, wherever it is.
_ROOT = str(Path(__file__).resolve().parent.parent) + "/"


def short(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module.py)`` with a trimmed path."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", _ROOT, "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('func')} ({path})"


def package(frame: str) -> str:
    """What a (shortened) frame belongs to: ``rooms``, ``uvicorn``, ``asyncio``, ..."""
    match = re.search(r"\(([^)]*)\)$", frame)
    where = match.group(1) if match else frame
    head = where.split("/", 1)[0]
    if head.endswith(".py"):
        head = head[:-3]
    return head or "?"


def by_package(lines: list[str]) -> tuple[int, Counter[str]]:
    """Self time per package of the innermost frame."""
    total, self_time, _ = summarise(lines)
    out: Counter[str] = Counter()
    for frame, count in self_time.items():
        out[package(frame)] += count
    return total, out


def summarise(lines: list[str], keep: str | None = None) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            if keep is None or keep in frame:
                inclusive[frame] += count
    return total, self_time, inclusive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", help="inclusive table: only frames containing this")
    parser.add_argument("--packages", action="store_true", help="self time per package")
    args = parser.parse_args(argv)
    with open(args.profile) as f:
        total, self_time, inclusive = summarise(f.readlines(), args.filter)
    if not total:
        print("no samples")
        return 1
    if args.packages:
        with open(args.profile) as f:
            _, packages = by_package(f.readlines())
        print(f"{total} samples\n\nself time by package:")
        for name, count in packages.most_common(args.top):
            print(f"{100 * count / total:6.1f} %  {name}")
        return 0
    print(f"{total} samples\n\nself time:")
    for frame, count in self_time.most_common(args.top):
        print(f"{100 * count / total:6.1f} %  {frame}")
    print("\ninclusive time:")
    for frame, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:6.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
