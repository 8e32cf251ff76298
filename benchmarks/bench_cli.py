"""How fast the command line answers: wall time of fresh ``python -m nasdepth`` processes.

Times ``--help``, ``diagnose --help``, a bad-input error (a study file that does not exist),
``spaces check`` of every shipped space (torch-free: the blocks' rules, no building), the same
with ``--samples 3`` (samples built on the meta device: imports torch) and, for scale, a bare
``import torch``; then the first and a later FLOP count of a small CNN in one process (the
count runs once per trial in every worker; one intra-op thread, as a study worker sharing the
cores runs). Prints the median of ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_cli.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FLOPS = """
import time
t = time.perf_counter()
from nasdepth.arch import ArchConfig, config_complexity
cfg = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 4, "width": 32}]})
t0 = time.perf_counter()
config_complexity(cfg, (1, 8, 8), 10)
t1 = time.perf_counter()
config_complexity(cfg, (1, 8, 8), 10)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def wall(argv: list[str], expect: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{argv}: exit {proc.returncode}, expected {expect}\n{proc.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    spaces = sorted(glob.glob(str(ROOT / "search_spaces" / "*.yaml")))
    cli = [sys.executable, "-m", "nasdepth"]
    cases = {
        "nasdepth --help": (cli + ["--help"], 0),
        "nasdepth diagnose --help": (cli + ["diagnose", "--help"], 0),
        "bad input (missing study file)": (cli + ["run", "missing.yaml"], 2),
        f"spaces check ({len(spaces)} spaces)": (cli + ["spaces", "check", *spaces], 0),
        "spaces check --samples 3 (1 space)": (cli + ["spaces", "check", "--samples", "3",
                                                       spaces[0]], 0),
        "python -c 'import torch' (for scale)": ([sys.executable, "-c", "import torch"], 0),
    }
    print(f"median wall time of {args.repeats} fresh processes")
    for label, (argv, expect) in cases.items():
        times = [wall(argv, expect) for _ in range(args.repeats)]
        print(f"  {label:40s} {statistics.median(times):6.2f} s")
    firsts, laters = [], []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", FLOPS], cwd=ROOT, capture_output=True,
                             text=True, check=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.split()
        firsts.append(float(out[0]))
        laters.append(float(out[1]))
    print(f"  FLOP count of a small CNN, first call    {statistics.median(firsts) * 1e3:6.1f} ms"
          f" (later calls {statistics.median(laters) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
