#!/usr/bin/env python
"""What skipping dL/dx of the data saves: a plain ``nn.Sequential`` model trained the README's
way, ``encoder.backward(dh, need_dx=False)`` (no dL/dx of the input) against
``encoder.backward(dh)`` (the whole chain, dL/dx included), interleaved rounds, same process.

    python benchmarks/input_grad.py --threads 1          # 784-250-16 / 16-320-784, batch 200

Prints the machine (read from the system), then for the fresh models and again after
``--train-steps`` untimed steps (the trained regime) the step time of each side (median and
min–max over the rounds) and the per-round ratio with/without dx; above 1, the skip is faster.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tinyae import backend, nn  # noqa: E402
from tinyae.losses import MSELoss  # noqa: E402
from tinyae.optim import Adam  # noqa: E402
from train_speed import machine_info, machine_lines  # noqa: E402  (the machine, read from the system)


def build(seed):
    rng = np.random.default_rng(seed)
    encoder = nn.Sequential(nn.Linear(784, 250, rng=rng), nn.ReLU(), nn.Linear(250, 16, rng=rng), nn.Tanh())
    decoder = nn.Sequential(nn.Linear(16, 320, rng=rng), nn.ReLU(), nn.Linear(320, 784, rng=rng), nn.Sigmoid())
    opt = Adam(encoder.parameters() + decoder.parameters(), lr=1e-3)
    return encoder, decoder, opt, MSELoss()


def steps(model, batches, need_dx, n):
    encoder, decoder, opt, loss_fn = model
    t = time.perf_counter()
    for i in range(n):
        x = batches[i % len(batches)]
        loss_fn(decoder(encoder(x)), x)
        opt.zero_grad()
        dx = encoder.backward(decoder.backward(loss_fn.backward()), need_dx=need_dx)
        opt.step()
    assert (dx is None) is (not need_dx)
    return (time.perf_counter() - t) / n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--steps", type=int, default=60, help="steps per round")
    ap.add_argument("--repeat", type=int, default=9, help="rounds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settle", type=float, default=0.2)
    ap.add_argument("--train-steps", type=int, default=300, help="untimed steps before the trained regime")
    args = ap.parse_args(argv)
    backend.set_num_threads(args.threads)
    for line in machine_lines(machine_info(args.threads, False)):
        print(f"# {line}")
    rng = np.random.default_rng(0)
    batches = [rng.random((args.batch, 784), dtype=np.float32) for _ in range(4)]
    sides = {"need_dx=False (no dL/dx)": (build(1), batches, False),
             "need_dx=True (dL/dx computed)": (build(1), batches, True)}
    for model, batches, need_dx in sides.values():
        steps(model, batches, need_dx, 10)           # warm-up
    for regime in ("fresh", "trained"):
        if regime == "trained":
            for model, batches, need_dx in sides.values():
                steps(model, batches, need_dx, args.train_steps)
        rounds = {k: [] for k in sides}
        for r in range(args.repeat):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                time.sleep(args.settle)              # the BLAS threads of the other side settle
                rounds[name].append(steps(*sides[name], args.steps))
        print(f"{regime}:")
        for name, ms in rounds.items():
            ms = [1e3 * t for t in ms]
            print(f"  {name:28s} {statistics.median(ms):6.2f} ms per step ({min(ms):.2f}–{max(ms):.2f})")
        a, b = rounds.values()
        ratio = [u / m for m, u in zip(a, b)]
        print(f"  with/without dx per round: {statistics.median(ratio):.3f} ({min(ratio):.3f}–{max(ratio):.3f}); "
              f"batch {args.batch}, {args.threads} thread(s), {args.repeat} rounds of {args.steps} steps")

if __name__ == "__main__":
    main()
