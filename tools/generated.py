"""Write a generated file, or (`--check`) say whether the committed one is current; shared by the
generators that `make docs` runs and the tests check."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Callable

REPO = pathlib.Path(__file__).resolve().parent.parent


def write_or_check(target: pathlib.Path, text: str, check: bool) -> int:
    """0 when written, or when current under `check`; 1 (with the fix on stderr) when stale."""
    name = target.relative_to(REPO)
    if check:
        if not target.exists() or target.read_text() != text:
            print(f"{name} is not current: run `make docs`", file=sys.stderr)
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {name}")
    return 0


def main(prog: str, description: str | None, target: pathlib.Path, render: Callable[[], str]) -> int:
    """The command line of a generator: write `target`, or `--check` it."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {target.relative_to(REPO)} is not current")
    return write_or_check(target, render(), parser.parse_args().check)
