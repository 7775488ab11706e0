"""Every cost target of the bundle in one run: ``bench_cli.py`` (what installing flask_complete
costs every ``flask`` command, against a venv without it), then ``bench_request.py`` (the request
floor in-process and over HTTP, and the example app's ``create_app()``).

Run: ``python benchmarks/bench_cost.py [--quick]``. Each benchmark's own report is printed as it
comes; at the end, every line with a target, and which were not met. ``--quick`` runs fewer
rounds (noisier figures). Exit status 1 when a target is not met.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (script, arguments, arguments with --quick)
RUNS = [
    ("bench_cli.py", [], ["--runs", "10"]),
    ("bench_request.py", [], ["--rounds", "3", "--http-rounds", "3"]),
]
_TARGET = re.compile(r"target [<>]=")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    targets: list[tuple[str, str]] = []
    for script, normal, quick in RUNS:
        print(f"\n===== {script}", flush=True)
        command = [sys.executable, str(HERE / script), *(quick if args.quick else normal)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                if _TARGET.search(line) and "(shown" not in line:
                    targets.append((script, line.strip()))
        if proc.returncode:
            print(f"{script} failed (exit {proc.returncode})")
            return proc.returncode
    print("\n===== every target")
    for script, line in targets:
        print(f"  {script:<17} {line}")
    missed = [line for _script, line in targets if "NOT MET" in line]
    print(f"\n{len(targets) - len(missed)} of {len(targets)} targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
