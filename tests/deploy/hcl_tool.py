"""Parses every ``.tf`` and ``.tfvars`` file given with python-hcl2 and prints them as one JSON
object keyed by file name. Runs in .tools/deploy-hcl (checkov's environment has a fork of the
same module); a file that does not parse exits 1 naming it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hcl2


def main(paths: list[str]) -> int:
    parsed = {}
    for path in map(Path, paths):
        try:
            with path.open() as handle:
                parsed[path.name] = hcl2.load(handle)
        except Exception as error:
            print(f"{path}: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    json.dump(parsed, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
