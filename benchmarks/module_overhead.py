#!/usr/bin/env python
"""What the Module layer costs: tinyae's training step against the raw kernels' (the same
array calls on bare arrays, ``raw_kernels.py``), in many short interleaved rounds.

    python benchmarks/module_overhead.py                     # the 196 models, batch 64 and 1024
    python benchmarks/module_overhead.py --models ae-784-200 --rounds 21

train_speed.py's "Module overhead" column is the ratio of two medians over 9 rounds, which
on a noisy machine swings by tens of percent for the small models; here the ratio is taken
per round (tinyae's round over the raw round next to it, the order alternating) over many
rounds, by default on one thread, where round times are steadiest, fresh and again after
``--train-steps`` more steps (the trained regime).  Prints the machine (read from the
system), then per model and regime the median step of each side and the median and
quartiles of the per-round overhead in percent.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import train_speed as ts  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="dense-ae-64,dense-vae-64,dense-ae-1024,dense-vae-1024",
                    help=f"comma-separated, from: {', '.join(ts.BENCH_BY_KEY)}")
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument("--steps", type=int, default=100, help="steps per side and round")
    ap.add_argument("--warmup", type=int, default=300, help="untimed steps per side before the fresh rounds")
    ap.add_argument("--train-steps", type=int, default=1000,
                    help="untimed steps per side between the fresh and the trained rounds (0: fresh only)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds of sleep before each round (default 0: both sides are NumPy)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    unknown = [k for k in args.models.split(",") if k not in ts.BENCH_BY_KEY]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(ts.BENCH_BY_KEY)}")
    if args.rounds < 4 or args.steps < 1 or args.warmup < 0 or args.train_steps < 0:
        ap.error("need --rounds >= 4 (for quartiles), --steps >= 1, --warmup and --train-steps >= 0")
    ts.limit_threads(args.threads)
    for line in ts.machine_lines(ts.machine_info(args.threads, False)):
        print(f"# {line}")
    for key in args.models.split(","):
        bench = ts.BENCH_BY_KEY[key]
        sides = {"tinyae": ts.LocalRunner("tinyae", bench, 0, False, 8),
                 "raw": ts.LocalRunner("raw", bench, 0, False, 8)}
        for regime, untimed in (("fresh", args.warmup), ("trained", args.train_steps)):
            if regime == "trained" and not untimed:
                continue
            for runner in sides.values():
                runner.run(untimed)
            rounds = {name: [] for name in sides}
            for r in range(args.rounds):
                for name in (("tinyae", "raw") if r % 2 == 0 else ("raw", "tinyae")):
                    if args.settle:
                        time.sleep(args.settle)
                    rounds[name].append(sides[name].run(args.steps))
            over = [100 * (t / r - 1) for t, r in zip(rounds["tinyae"], rounds["raw"])]
            q = statistics.quantiles(over, n=4)
            print(f"{key:15s} {regime:7s} tinyae {1e6 * statistics.median(rounds['tinyae']):8.0f} µs  "
                  f"raw {1e6 * statistics.median(rounds['raw']):8.0f} µs  "
                  f"overhead {statistics.median(over):+5.1f} % (quartiles {q[0]:+.1f} … {q[2]:+.1f}); "
                  f"{args.rounds} rounds of {args.steps} steps, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
