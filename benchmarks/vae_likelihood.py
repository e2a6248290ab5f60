#!/usr/bin/env python
"""The main job's VAE, scored as the literature scores VAEs: the test log-likelihood.

A VAE's loss is the negative ELBO, a bound.  ``tinyae.metrics.iwae_bound`` gives the
k-sample importance-weighted bound L_k ≤ log p(x), which rises towards log p(x) with k.  This
script loads a checkpoint written by ``examples/vae_mnist.py`` and prints, per test sample
(mean over the test digits used, in nats), the ELBO from the loss (analytic KL) and L_k for
each k asked for, with the seconds each took:

    python examples/vae_mnist.py --out /tmp/vae                          # the tutorial's VAE
    python benchmarks/vae_likelihood.py /tmp/vae/checkpoint.npz --k 1 10 100 1000 --limit 1000

The test digits are prepared as the main job prepares them (the checkpoint's builder says
which: 14×14 in [-1, 1] for vae-196-64-16, 28×28 in [0, 1] for vae-784-400-20).  For a
model trained with squared error the numbers are log-densities of N(x̂, ½ I) (the constant
−(D/2) log π included); for BCE on grey pixels they are the same bound on the cross-entropy
objective, not a density (docs/models.md, "The VAE's likelihood").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tinyae import data  # noqa: E402
from tinyae.checkpoint import load_checkpoint  # noqa: E402
from tinyae.losses import MSELoss  # noqa: E402
from tinyae.metrics import iwae_bound  # noqa: E402

PREPARE = {"vae-196-64-16": (14, "symmetric"), "vae-784-400-20": (28, "unit")}   # as examples/vae_mnist.py


def test_images(builder, subset, limit):
    size, value_range = PREPARE[builder]
    images, _ = data.load_dataset("mnist", split="test", subset=subset)
    x = data.to_float(images[:limit] if limit else images, range=value_range)
    if size != 28:
        x = data.resize(x, size=size)
    return data.flatten(x)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="a checkpoint of examples/vae_mnist.py")
    ap.add_argument("--k", type=int, nargs="+", default=[1, 10, 100, 1000], help="importance samples")
    ap.add_argument("--limit", type=int, default=1000, help="the first N test digits (0: all 10,000)")
    ap.add_argument("--data", choices=["auto", "full", "embedded"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ck = load_checkpoint(args.checkpoint)
    model = ck.model
    if ck.builder not in PREPARE:
        ap.error(f"{args.checkpoint}: a {ck.builder} checkpoint; expected one of {sorted(PREPARE)}")
    x = test_images(ck.builder, args.data, args.limit).astype(model.parameters()[0].dtype)
    model.eval()
    total, parts = model.loss(x)          # the reported loss: recon + KL summed, ε from the model's rng
    n, d = x.shape
    gaussian = isinstance(model.recon_loss, MSELoss)
    const = d / 2 * np.log(np.pi) if gaussian else 0.0
    print(f"# {ck.builder} after {ck.epoch} epochs, {n:,} test digits, "
          f"p(x|z) = {'N(x̂, ½ I)' if gaussian else 'Bernoulli(σ(logits)) on grey pixels (not a density)'}")
    print("| bound | nats per digit (mean) | seconds |")
    print("| --- | ---: | ---: |")
    print(f"| loss per digit (recon + KL, as the main job prints it) | {float(total) / n:.2f} | — |")
    print(f"| ELBO (analytic KL{', with −(D/2) log π' if gaussian else ''}) | {-float(total) / n - const:.2f} | — |")
    for k in args.k:
        t0 = time.perf_counter()
        bound = iwae_bound(model, x, k, seed=args.seed)
        print(f"| L_{k} | {bound.mean():.2f} | {time.perf_counter() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
