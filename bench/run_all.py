"""Every benchmark in turn (``make bench``); each writes bench/results/<name>.json and prints it.

    python bench/run_all.py [--quick]

``--quick`` leaves out the ones that take many minutes (SciFact's 5,183 abstracts, the BBC build).
The numbers that BENCHMARKS.md reports come from these files.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# (script and arguments, minutes it takes on 2 cores, needs ../shared/evaldata)
BENCHMARKS = [
    (["bench_ask.py"], 2, False),
    (["bench_index.py", "latency"], 3, True),
    (["bench_index.py", "update"], 4, True),
    (["bench_index.py", "build"], 8, True),
    (["bench_ray.py"], 4, True),  # needs the [ray] extra
    (["bench_scifact.py", "--backends", "torch,onnx,onnx-int8,torch-bf16"], 30, True),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the benchmarks of a few minutes")
    args = parser.parse_args()
    failed = []
    for command, minutes, _ in BENCHMARKS:
        if args.quick and minutes > 4:
            continue
        print(f"== {' '.join(command)} (about {minutes} min)", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / command[0]), *command[1:]], cwd=HERE.parent)
        print(f"== {' '.join(command)}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(" ".join(command))
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
