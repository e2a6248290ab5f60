#!/usr/bin/env python
"""Measure the "Intro to Autoencoders" tutorial's claims about its conv AE against its dense AE.

    python examples/conv_ae_mnist.py --threads 2 --out runs/conv           # 50 epochs
    python examples/ae_mnist.py --arch 784-250-16 --threads 2 --out runs/dense
    python benchmarks/intro_claims.py --conv runs/conv --dense runs/dense --out runs/claims

Each folder holds the run's ``checkpoint.npz`` (the last epoch) and, optionally,
``checkpoint_eN.npz`` copies of earlier epochs (N = 5, 10, … : the tutorial speaks of 5 and
10).  Every digit is judged by one referee that knows nothing of either model: a 5-nearest-
neighbour vote among the 60,000 training digits (Euclidean distance on the pixels).

* **Reconstructions** (each epoch kept): the share of 2,000 test digits whose reconstruction
  the referee labels as the digit it was, and what the 1,009 test 9s come back as (9, 7, 4).
* **Generation** (last epoch): 1,000 codes drawn from N(0, 0.33²) per coordinate, the same
  draws for both models, decoded.  Per decoded image: the distance to its nearest training
  digit (RMS per pixel) and how many of its 5 neighbours agree with the vote; the labels'
  spread.  Real test digits give the scale.
* **Clustering** (last epoch): the same 3,000 training codes as the tutorial's KernelPCA
  figures (examples/keras_figures.py), mapped by RBF KernelPCA to 2-D; the silhouette of each
  digit's points there and in the 16-D codes, and the share of each code's 10 nearest codes
  that are the same digit.

Writes ``claims.json`` and ``nines.png`` (test 9s over each model's reconstructions at each
kept epoch) into --out, and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tinyae  # noqa: E402,F401  (before NumPy's BLAS threads start: tinyae sets their timeout)
from tinyae import data as tdata, plot  # noqa: E402
from tinyae.checkpoint import load_checkpoint  # noqa: E402

K_VOTE = 5
N_RECON = 2000
N_GEN = 1000
CODE_STD = 0.33       # the tutorial's spread of the codes it decodes
N_PCA = 3000          # as examples/keras_figures.py


class Referee:
    """A k-nearest-neighbour vote among the training digits (pixels in [0, 1], flattened)."""

    def __init__(self, x_train, y_train, k=K_VOTE, chunk=500):
        self.x, self.y, self.k, self.chunk = x_train, y_train, k, chunk
        self.sq = np.einsum("ij,ij->i", x_train, x_train)

    def __call__(self, q):
        """(labels, nearest RMS distance per pixel, share of the k neighbours agreeing) of q (m, 784)."""
        labels, nearest, agree = [], [], []
        for i in range(0, len(q), self.chunk):
            qb = np.asarray(q[i:i + self.chunk], dtype=np.float32).reshape(-1, self.x.shape[1])
            d2 = np.einsum("ij,ij->i", qb, qb)[:, None] - 2.0 * (qb @ self.x.T) + self.sq[None]
            idx = np.argpartition(d2, self.k, axis=1)[:, :self.k]
            d = np.take_along_axis(d2, idx, axis=1)
            order = np.argsort(d, axis=1)
            idx, d = np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)
            votes = self.y[idx]                                   # (m, k), nearest first
            counts = np.stack([(votes == c).sum(1) for c in range(10)], axis=1)
            best = counts.max(1, keepdims=True)
            # a tie goes to the tied label of the nearest neighbour
            tied = counts[np.arange(len(votes))[:, None], votes] == best
            lab = votes[np.arange(len(votes)), tied.argmax(1)]
            labels.append(lab)
            nearest.append(np.sqrt(np.maximum(d[:, 0], 0.0) / self.x.shape[1]))
            agree.append((votes == lab[:, None]).mean(1))
        return np.concatenate(labels), np.concatenate(nearest), np.concatenate(agree)


def load_runs(folder):
    """{epoch: model} of a run folder: checkpoint_eN.npz and the last checkpoint.npz."""
    runs = {}
    for path in sorted(Path(folder).glob("checkpoint*.npz")):
        if not re.fullmatch(r"checkpoint(_e\d+)?\.npz", path.name):
            continue
        ck = load_checkpoint(path)
        ck.model.eval()
        runs[ck.epoch] = (ck.model, ck.history)
    if not runs:
        raise SystemExit(f"no checkpoint*.npz in {folder}")
    return dict(sorted(runs.items()))


def batched(fn, x, n=500):
    return np.concatenate([np.asarray(fn(x[i:i + n])) for i in range(0, len(x), n)])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conv", type=Path, required=True, help="the conv AE's run folder (examples/conv_ae_mnist.py --out)")
    p.add_argument("--dense", type=Path, required=True, help="the dense AE's (examples/ae_mnist.py --arch 784-250-16 --out)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data-root", default=os.environ.get("TINYAE_DATA"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 5,000 training digits as the referee, a tenth of every sample")
    args = p.parse_args(argv)
    global N_RECON, N_GEN, N_PCA
    if args.quick:
        N_RECON, N_GEN, N_PCA = N_RECON // 10, N_GEN // 10, N_PCA // 10
    args.out.mkdir(parents=True, exist_ok=True)

    xtr, ytr = tdata.load_mnist("train", root=args.data_root, download=False, subset="full", verbose=False)
    xte, yte = tdata.load_mnist("test", root=args.data_root, download=False, subset="full", verbose=False)
    xtr, xte = tdata.flatten(tdata.to_float(xtr)), tdata.flatten(tdata.to_float(xte))
    referee = Referee(xtr[:5000], ytr[:5000]) if args.quick else Referee(xtr, ytr)
    shape = {"conv": (-1, 1, 28, 28), "dense": (-1, 784)}
    models = {"conv": load_runs(args.conv), "dense": load_runs(args.dense)}
    report = {"referee": f"{K_VOTE}-nearest-neighbour vote among the 60,000 training digits"}

    # the referee on real digits: the scale for everything below
    lab, near, agree = referee(xte[:N_RECON])
    report["real"] = {"accuracy": float((lab == yte[:N_RECON]).mean()), "nearest_median": float(np.median(near)),
                      "agree_mean": float(agree.mean())}

    # reconstructions at each kept epoch; the 9s
    nines = np.flatnonzero(yte == 9)
    report["reconstruction"] = {}
    rows = [xte[nines[:10]]]
    row_names = ["test 9s"]
    for name in ("conv", "dense"):
        for epoch, (model, history) in models[name].items():
            rec = batched(lambda x: model.forward(x.reshape(shape[name])), xte[:N_RECON]).reshape(N_RECON, -1)
            lab, _, _ = referee(rec)
            r9 = batched(lambda x: model.forward(x.reshape(shape[name])), xte[nines]).reshape(len(nines), -1)
            l9, _, _ = referee(r9)
            test_mse = next(h["test_loss"] for h in history if h["epoch"] == epoch)
            report["reconstruction"][f"{name}@{epoch}"] = {
                "model": name, "epoch": epoch, "test_mse": test_mse,
                "kept_label": float((lab == yte[:N_RECON]).mean()),
                "nines_as": {str(d): float((l9 == d).mean()) for d in range(10)}}
            rows.append(r9[:10])
            row_names.append(f"{name} e{epoch}")
    plot.save_image_grid(np.concatenate(rows).reshape(-1, 28, 28), args.out / "nines.png", nrow=10,
                         title="rows: " + ", ".join(row_names))

    # generation from N(0, 0.33²) codes: the same draws for both models
    z = np.random.default_rng(args.seed).normal(0.0, CODE_STD, size=(N_GEN, 16)).astype(np.float32)
    report["generation"] = {}
    for name in ("conv", "dense"):
        epoch = max(models[name])
        model = models[name][epoch][0]
        images = batched(model.decode, z).reshape(N_GEN, -1)
        lab, near, agree = referee(images)
        report["generation"][name] = {
            "epoch": epoch, "nearest_median": float(np.median(near)), "agree_mean": float(agree.mean()),
            "unanimous": float((agree == 1.0).mean()),
            "labels": {str(d): int((lab == d).sum()) for d in range(10)}}

    # clustering: the tutorial's 3,000 training codes, KernelPCA 2-D, silhouettes
    from sklearn.metrics import silhouette_samples
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(xtr), size=N_PCA, replace=False)        # the draw of keras_figures.tutorial_figures
    report["clustering"] = {}
    for name in ("conv", "dense"):
        epoch = max(models[name])
        model = models[name][epoch][0]
        codes = batched(lambda x: model.encode(x.reshape(shape[name])), xtr[pick]).reshape(N_PCA, -1)
        y = ytr[pick]
        kp = plot.kernel_pca(codes, 2)
        s2, s16 = silhouette_samples(kp, y), silhouette_samples(codes, y)
        sq = np.einsum("ij,ij->i", codes, codes)
        d2 = sq[:, None] - 2.0 * (codes @ codes.T) + sq[None]
        np.fill_diagonal(d2, np.inf)
        nn = np.argsort(d2, axis=1)[:, :10]
        purity = (y[nn] == y[:, None]).mean(1)
        report["clustering"][name] = {
            "epoch": epoch,
            "silhouette_kpca2d": {"all": float(s2.mean()), **{str(d): float(s2[y == d].mean()) for d in range(10)}},
            "silhouette_codes": {"all": float(s16.mean()), **{str(d): float(s16[y == d].mean()) for d in range(10)}},
            "neighbour_purity": {"all": float(purity.mean()), **{str(d): float(purity[y == d].mean()) for d in range(10)}},
            "code_std": [float(v) for v in codes.std(0)],
            "saturated": float((np.abs(codes) > 0.95).mean())}

    (args.out / "claims.json").write_text(json.dumps(report, indent=1) + "\n")
    print_tables(report)
    print(f"wrote {args.out / 'claims.json'} and {args.out / 'nines.png'}")
    return 0


def print_tables(r):
    real = r["real"]
    print(f"referee on {N_RECON} real test digits: accuracy {real['accuracy']:.3f}, median nearest distance "
          f"{real['nearest_median']:.4f}, neighbours agreeing {real['agree_mean']:.3f}\n")
    print("| model | epoch | test MSE | reconstructions keeping their label | test 9s read as 9 / 7 / 4 |")
    print("| --- | ---: | ---: | ---: | --- |")
    for v in r["reconstruction"].values():
        n = v["nines_as"]
        print(f"| {v['model']} | {v['epoch']} | {v['test_mse']:.5f} | {v['kept_label']:.3f} | "
              f"{n['9']:.3f} / {n['7']:.3f} / {n['4']:.3f} |")
    print(f"\n| model | median nearest distance | neighbours agreeing | unanimous | labels 0…9 of {N_GEN:,} |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, v in r["generation"].items():
        print(f"| {name} | {v['nearest_median']:.4f} | {v['agree_mean']:.3f} | {v['unanimous']:.3f} | "
              + " ".join(str(v["labels"][str(d)]) for d in range(10)) + " |")
    print("\n| model | silhouette, KPCA 2-D (all / 1s) | silhouette, codes (all / 1s) | 10-NN purity (all / 1s) | "
          "code std per coordinate | share of |code| > 0.95 |")
    print("| --- | --- | --- | --- | --- | ---: |")
    for name, v in r["clustering"].items():
        s2, s16, pu = v["silhouette_kpca2d"], v["silhouette_codes"], v["neighbour_purity"]
        print(f"| {name} | {s2['all']:.3f} / {s2['1']:.3f} | {s16['all']:.3f} / {s16['1']:.3f} | "
              f"{pu['all']:.3f} / {pu['1']:.3f} | {min(v['code_std']):.2f}–{max(v['code_std']):.2f} | "
              f"{v['saturated']:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
