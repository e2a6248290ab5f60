"""The 14×14 chapter's figures, the autoencoder beside the variational autoencoder.

The chapter trains two models on 14×14 digits in [−1, 1] with the same trunk — the AE
196-64-16-3 / 3-16-64-196 (MSE) and the VAE 196-64-16 with heads 16→3 for μ and log σ²
(MSE summed + KL) — LeakyReLU(0.2), Tanh output, Adam 1e-3, batch 64, 20 epochs, on batches
flipped left-right (p = ½) and rotated by up to ±10° (``--augment``, on by default here as in
the chapter; ``--no-augment`` leaves it out).  Its argument: the AE's 3-D codes are spread
out and clumped by digit, the VAE's compact around the origin (the KL term pulls every
q(z|x) towards N(0, I)).  This script trains both (the builders ``dense-196-64-16`` and
``vae-196-64-16`` with ``tinyae.train.fit``: same seed, same shuffles, same augmented
batches), or loads them (``--ae`` / ``--vae``: the checkpoints of ``examples/ae_mnist.py`` and
of the main job ``examples/vae_mnist.py``), and writes to --out (default
results/chapter_figures/):

  reconstructions_ae.png, reconstructions_vae.png
                     the chapter's 2×10 grids: ten test digits (one per class, top row)
                     over their reconstructions (bottom row; the VAE's decodes z = μ)
  latent_3d_ae.png, latent_3d_vae.png
                     3-D scatter of the test digits' codes (the VAE's μ), one colour per
                     digit with a legend entry per digit (the chapter's figure)
  latent_ae_vs_vae.png
                     the two side by side: the same test digits on the same axes
  chapter.json       how spread and how clumped each latent space is: rms radius of the
                     codes about their mean, rms spread within a digit's class, their ratio
                     (small: tight clumps), per-coordinate std; the final test losses
  checkpoint_ae.npz, checkpoint_vae.npz   (when trained here)

    python examples/chapter_figures.py                 # both models, 20 epochs, augmented
    python examples/chapter_figures.py --ae results/ae_mnist/checkpoint.npz \\
        --vae results/vae_mnist/checkpoint.npz         # figures of models trained already
"""
from common import (AUGMENT_NOTE, UsageError, done, fit_options, flip_rotate, load_images, make_parser,
                    n_params, one_per_class, run, run_cli, setup_backend)
import argparse
import json
import pathlib
import time

import numpy as np

from tinyae import models, plot
from tinyae.checkpoint import load_checkpoint
from tinyae.data import DataLoader
from tinyae.optim import Adam
from tinyae.train import fit

SIDE = 14
SHOWN = dict(value_range=(-1, 1), scale=4)
BUILDERS = {"ae": "dense-196-64-16", "vae": "vae-196-64-16"}

parser = make_parser("chapter_figures", __doc__.splitlines()[0], epochs=20, batch_size=64)
parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                    help="train on flipped (p = 0.5) and rotated (±10°) batches, as the chapter (default: on)")
parser.add_argument("--ae", type=pathlib.Path, default=None, metavar="CHECKPOINT",
                    help="load the AE from this checkpoint (examples/ae_mnist.py --arch tutorial) instead of training")
parser.add_argument("--vae", type=pathlib.Path, default=None, metavar="CHECKPOINT",
                    help="load the VAE from this checkpoint (examples/vae_mnist.py) instead of training")
parser.add_argument("--points", type=int, default=2000,
                    help="test digits in the scatters (default 2000; all of them if fewer)")


def spread(codes, labels):
    """How spread and how clumped codes (N, k) are: {"rms_radius", "rms_within_class", "clump_ratio",
    "std_per_coordinate"}; rms_within_class is the rms distance of a code from its class's mean."""
    radius = float(np.sqrt(((codes - codes.mean(axis=0)) ** 2).sum(axis=1).mean()))
    within = np.concatenate([codes[labels == c] - codes[labels == c].mean(axis=0) for c in np.unique(labels)])
    inside = float(np.sqrt((within ** 2).sum(axis=1).mean()))
    return {"rms_radius": radius, "rms_within_class": inside, "clump_ratio": inside / max(radius, 1e-12),
            "std_per_coordinate": [float(v) for v in codes.std(axis=0)]}


def get_model(which, path, args, x_train, x_test):
    """(model, test loss or None, seconds or None): loaded from ``path``, or trained here."""
    if path is not None:
        if not path.is_file():
            raise UsageError(f"--{which} {path}: no such checkpoint")
        ckpt = load_checkpoint(path)
        if ckpt.model.builder is None or ckpt.model.builder[0] != BUILDERS[which]:
            raise UsageError(f"--{which} {path} holds {ckpt.model.builder and ckpt.model.builder[0]!r}, "
                             f"expected the chapter's {BUILDERS[which]!r}")
        if ckpt.model.builder[1].get("latent", 3) != 3:
            raise UsageError(f"--{which} {path}: a {ckpt.model.builder[1]['latent']}-D latent space; the chapter's "
                             "figures are of 3-D codes (train it with --latent-dim 3)")
        print(f"{which}: {BUILDERS[which]} loaded from {path} (epoch {ckpt.epoch})", flush=True)
        last = ckpt.history[-1] if ckpt.history else {}
        return ckpt.model, last.get("test_loss"), None
    model = models.build(BUILDERS[which], latent=3, seed=args.seed)
    print(f"{which}: {BUILDERS[which]} with a 3-D latent space, {n_params(model)} parameters", flush=True)
    train = x_train
    if args.augment:   # the same shuffles for both models, each batch flipped/rotated as drawn
        train = DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                           transform=flip_rotate(SIDE, fill=-1.0))
    start = time.perf_counter()
    history = fit(model, Adam(model.parameters(), lr=args.lr), train, x_test,
                  **fit_options(args, f"checkpoint_{which}.npz"))
    return model, (history.last()["test_loss"] if len(history) else None), time.perf_counter() - start


def main(args):
    if args.points < 10:
        parser.error(f"argument --points: must be at least 10, got {args.points}")
    setup_backend(args)
    x_train, _, x_test, y_test = load_images(args, size=SIDE, value_range="symmetric")
    if args.augment and not (args.ae and args.vae):
        print(AUGMENT_NOTE, flush=True)
    trained = {w: get_model(w, getattr(args, w), args, x_train, x_test) for w in BUILDERS}
    ae, vae = trained["ae"][0], trained["vae"][0]
    ae.eval()
    vae.eval()

    fixed = one_per_class(y_test, 10)
    names = {"ae": "AE", "vae": "VAE"}
    recon = {"ae": ae.forward, "vae": lambda x: vae.reconstruct(x, mode="deterministic")}
    for w in BUILDERS:
        plot.save_reconstructions(x_test[fixed].reshape(-1, SIDE, SIDE),
                                  run(recon[w], x_test[fixed]).reshape(-1, SIDE, SIDE),
                                  args.out / f"reconstructions_{w}.png", n=10, **SHOWN,
                                  title=f"{names[w]}: test digits (top) and reconstructions (bottom)")

    shown = np.random.default_rng(args.seed).permutation(len(x_test))[:args.points]
    codes = {"ae": run(ae.encode, x_test), "vae": run(lambda x: vae.encode(x)[0], x_test)}
    for w in BUILDERS:
        plot.save_latent_scatter(codes[w][shown], y_test[shown], args.out / f"latent_3d_{w}.png", legend=True,
                                 title=f"{names[w]}: {len(shown):,} test digits in the 3-D latent space"
                                       + (" (μ)" if w == "vae" else ""))
    plot.save_latent_comparison([codes["ae"][shown], codes["vae"][shown]], y_test[shown],
                                args.out / "latent_ae_vs_vae.png", titles=["AE: codes", "VAE: means μ"],
                                title=f"the same {len(shown):,} test digits, the same axes")

    report = {"settings": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                           "augment": args.augment, "train_images": len(x_train), "test_images": len(x_test),
                           "data": args.data, "ae": str(args.ae or ""), "vae": str(args.vae or "")},
              "latent": {w: spread(codes[w], y_test) for w in BUILDERS},
              "test_loss": {"ae (MSE per pixel)": trained["ae"][1],
                            "vae (per sample, MSE sum + KL)": trained["vae"][1]},
              "seconds": {w: None if trained[w][2] is None else round(trained[w][2], 1) for w in BUILDERS}}
    (args.out / "chapter.json").write_text(json.dumps(report, indent=1) + "\n")
    for w in BUILDERS:
        m = report["latent"][w]
        print(f"{names[w]} latent space: rms radius {m['rms_radius']:.3f}, rms within a digit's class "
              f"{m['rms_within_class']:.3f} (ratio {m['clump_ratio']:.2f}), std per coordinate "
              + ", ".join(f"{v:.3f}" for v in m["std_per_coordinate"]), flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
