#!/usr/bin/env python
"""Does flushing Adam's subnormal moments change training?  And what does it save?

    python benchmarks/subnormal_curve.py --model ae-784-200 --steps 2000 --threads 1

Trains the same tinyae model (same initial weights, same MNIST batches in the same order)
once per optimizer engine (tinyae/optim_engine.py: "reference" = Adam.update's NumPy lines,
which keep subnormals; "numba" and "blocks", which flush them), the engines interleaved in
chunks of ``--chunk`` steps with a settle pause before each chunk.  Reports, every chunk:
the loss of each engine (and the largest relative difference from the reference so far),
the share of Adam's first-moment entries that are subnormal, and each engine's seconds per
step in that chunk.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import train_speed as ts  # noqa: E402
from tinyae import optim_engine  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ae-784-200", choices=list(ts.BENCH_BY_KEY))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--batches", type=int, default=50, help="distinct MNIST batches cycled through")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settle", type=float, default=0.3)
    ap.add_argument("--engines", default=",".join(optim_engine.available()))
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    ts.limit_threads(args.threads)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bench = ts.BENCH_BY_KEY[args.model]
    runners = {}
    for e in engines:
        os.environ["TINYAE_OPTIM_ENGINE"] = e       # the engine the runner's Adam is built with
        runners[e] = ts.LocalRunner("tinyae", bench, 0, False, args.batches)
        assert runners[e].step.opt.engine == e
    print(f"# {args.model}, batch {bench.batch}, {args.threads} thread(s), engines {engines}; load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    print("| steps | " + " | ".join(f"{e} loss" for e in engines) + " | max rel. loss diff vs reference | "
          + " | ".join(f"{e} subnormal m %" for e in engines) + " | " + " | ".join(f"{e} ms/step" for e in engines)
          + " | load |")
    print("|" + "---|" * (2 + 3 * len(engines) + 1))
    rows, worst = [], 0.0
    for done in range(0, args.steps, args.chunk):
        row = {"steps": done + args.chunk, "loss": {}, "subnormal_pct": {}, "ms": {}}
        for e in (engines if (done // args.chunk) % 2 == 0 else engines[::-1]):
            time.sleep(args.settle)
            r = runners[e]
            row["ms"][e] = r.run(args.chunk) * 1e3
            row["loss"][e] = float(r.step(r.batches[r.done % len(r.batches)]))   # one more step: its loss
            r.done += 1
            m = r.step.opt._flat_state["exp_avg"]
            tiny = numpy.finfo(m.dtype).tiny
            row["subnormal_pct"][e] = 100.0 * numpy.count_nonzero((numpy.abs(m) < tiny) & (m != 0)) / m.size
        if "reference" in row["loss"]:
            ref = row["loss"]["reference"]
            worst = max([worst] + [abs(v - ref) / abs(ref) for v in row["loss"].values()])
        row["max_rel_diff"] = worst
        row["load"] = os.getloadavg()[0]
        rows.append(row)
        print(f"| {row['steps']} | " + " | ".join(f"{row['loss'][e]:.6f}" for e in engines) + f" | {worst:.1e} | "
              + " | ".join(f"{row['subnormal_pct'][e]:.1f}" for e in engines) + " | "
              + " | ".join(f"{row['ms'][e]:.2f}" for e in engines) + f" | {row['load']:.1f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
