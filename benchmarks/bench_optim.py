#!/usr/bin/env python
"""One Adam step over a flat parameter buffer, by every CPU engine, fresh and with subnormal
moments: the measurement behind tinyae/optim_engine.py's choice (docs/performance.md).

    python benchmarks/bench_optim.py --threads 2                 # 27k, 457k and 650k parameters
    python benchmarks/bench_optim.py --sizes 457000 --repeat 15

Candidates, all computing the same rule (tinyae.optim.Adam.update) on float32:

* ``reference``      Adam.update's 13 NumPy passes (tinyae.optim_engine "reference");
* ``blocks-1``       tinyae's engine on one thread (cache-sized blocks, one scratch buffer);
* ``blocks``         tinyae's engine, blocks spread over a thread pool (the default);
* ``numexpr``        three fused numexpr expressions (numexpr's own thread pool; not in tinyae);
* ``numba``          tinyae's engine "numba": one compiled loop, on one thread;
* ``torch``/``torch-fused``  torch.optim.Adam, default (foreach) and ``fused=True``, on tensors
  of the same size, for scale.

Regimes: ``fresh`` (moments of normal size) and ``subnormal`` (a fifth of the gradients
exactly 0 and their first moments in the subnormal range, as after ~800 steps of dead units;
restored before every round, untimed: the reference then pays the slow path on every step of
the round, the engines flush on the first step and run on zeros after).  Each candidate's rounds are
interleaved, the order reversed every other round, with a ``--settle`` pause before each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinyae import nn, optim, optim_engine  # noqa: E402


def make_state(n, regime, rng):
    p = rng.standard_normal(n).astype(numpy.float32) * numpy.float32(0.05)
    g = rng.standard_normal(n).astype(numpy.float32) * numpy.float32(1e-3)
    m = g * numpy.float32(0.1)
    v = g * g * numpy.float32(0.01) + numpy.float32(1e-12)
    if regime == "subnormal":
        dead = rng.random(n) < 0.2
        g[dead] = 0
        m[dead] = numpy.float32(3e-39) * numpy.sign(rng.standard_normal(dead.sum())).astype(numpy.float32)
    return p, g, m, v


def tinyae_candidate(engine, n, regime, rng, single=False):
    p, g, m, v = make_state(n, regime, rng)
    param = nn.Parameter(p)
    opt = optim.Adam([param], lr=1e-3, engine=engine)
    opt.step_count = 100
    param.grad[...] = g
    opt._flat_buffer("exp_avg")[...] = m
    opt._flat_buffer("exp_avg_sq")[...] = v
    saved = (opt._flat_state["exp_avg"].copy(), opt._flat_state["exp_avg_sq"].copy())

    def step():
        limit = optim_engine.THREAD_MIN
        if single:
            optim_engine.THREAD_MIN = 1 << 62
        try:
            opt.step()
        finally:
            optim_engine.THREAD_MIN = limit

    def reset():                     # before each round (untimed): the subnormal moments back
        opt._flat_state["exp_avg"][...] = saved[0]
    step.reset = reset
    return step


def numexpr_candidate(n, regime, rng):
    """The rule as three numexpr expressions (fused, numexpr's threads), flushing m."""
    import numexpr  # noqa: PLC0415
    p, g, m, v = make_state(n, regime, rng)
    f = numpy.float32
    names = dict(b1=f(0.9), c1=f(0.1), b2=f(0.999), c2=f(0.001), s=f(1e-3), bc=f(0.3), eps=f(1e-8),
                 tiny=f(numpy.finfo(numpy.float32).tiny), zero=f(0), g=g, m=m, v=v, p=p)
    saved = m.copy()

    def step():
        numexpr.evaluate("where(abs(m * b1 + g * c1) < tiny, zero, m * b1 + g * c1)", local_dict=names, out=m)
        numexpr.evaluate("v * b2 + g * g * c2", local_dict=names, out=v)
        numexpr.evaluate("p - (m / (sqrt(v) / bc + eps)) * s", local_dict=names, out=p)

    def reset():
        m[...] = saved
    step.reset = reset
    return step


def torch_candidate(n, regime, rng, fused):
    import torch  # noqa: PLC0415
    p, g, m, v = make_state(n, regime, rng)
    tp = torch.nn.Parameter(torch.from_numpy(p))
    tp.grad = torch.from_numpy(g)
    opt = torch.optim.Adam([tp], lr=1e-3, fused=fused) if fused else torch.optim.Adam([tp], lr=1e-3)
    opt.step()
    st = opt.state[tp]
    st["exp_avg"].copy_(torch.from_numpy(m))
    st["exp_avg_sq"].copy_(torch.from_numpy(v))
    saved = st["exp_avg"].clone()

    def step():
        opt.step()

    def reset():
        st["exp_avg"].copy_(saved)
    step.reset = reset
    return step


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="27591,457600,652824", help="parameter counts (default: the 196 AE, "
                    "the 784-250-16-320-784 AE, the 784-400-20 VAE)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--steps", type=int, default=20, help="steps per round")
    ap.add_argument("--settle", type=float, default=0.2)
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMEXPR_MAX_THREADS", str(args.threads))
    optim_engine.set_num_threads(args.threads)
    try:
        import threadpoolctl  # noqa: PLC0415
        threadpoolctl.threadpool_limits(args.threads)
    except ImportError:
        pass
    try:
        import torch  # noqa: PLC0415
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    try:
        import numexpr  # noqa: PLC0415
        numexpr.set_num_threads(args.threads)
    except ImportError:
        numexpr = None
    print(f"# load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.threads} threads")
    print("| parameters | regime | " + " | ".join(["reference", "blocks-1", "blocks", "numexpr", "numba", "torch",
                                                   "torch-fused"]) + " |")
    print("|---|---|" + "---|" * 7)
    for n in [int(s) for s in args.sizes.split(",")]:
        for regime in ("fresh", "subnormal"):
            rng = numpy.random.default_rng(0)
            cands = {"reference": tinyae_candidate("reference", n, regime, rng),
                     "blocks-1": tinyae_candidate("blocks", n, regime, rng, single=True),
                     "blocks": tinyae_candidate("blocks", n, regime, rng)}
            if numexpr is not None:
                cands["numexpr"] = numexpr_candidate(n, regime, rng)
            if "numba" in optim_engine.available():     # (its loop runs on one thread)
                cands["numba"] = tinyae_candidate("numba", n, regime, rng)
            if torch is not None:
                cands["torch"] = torch_candidate(n, regime, rng, fused=False)
                cands["torch-fused"] = torch_candidate(n, regime, rng, fused=True)
            for fn in cands.values():
                for _ in range(3):
                    fn()
            names = list(cands)
            times = {k: [] for k in names}
            for r in range(args.repeat):
                for k in (names if r % 2 == 0 else names[::-1]):
                    cands[k].reset()
                    time.sleep(args.settle)
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        cands[k]()
                    times[k].append((time.perf_counter() - t0) / args.steps)
            cells = []
            for k in ("reference", "blocks-1", "blocks", "numexpr", "numba", "torch", "torch-fused"):
                cells.append("n/a" if k not in times else f"{1e6 * statistics.median(times[k]):.0f}")
            print(f"| {n:,} | {regime} | " + " | ".join(cells) + " |", flush=True)
    print(f"# µs per step, median of {args.repeat} rounds of {args.steps} steps; load average at end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
