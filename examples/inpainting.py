"""Inpainting: the NYU lecture's denoising autoencoder against OpenCV's Telea and Navier–Stokes.

The lecture's notebook trains a 784-500-784 tanh autoencoder on digits in [−1, 1] whose
pixels are dropped by ``nn.Dropout()`` masks (p = ½: half the pixels 0 — mid-grey — the
others doubled; tinyae's ``corruption=("dropout", 0.5)``, see examples/nyu_autoencoders.py),
and sets its repairs beside ``cv2.inpaint`` with the Telea (fast marching) and Navier–Stokes
methods.  This script does that on the whole test set, for two corruptions:

  pixels  half the pixels dropped at random (a fresh mask per test digit).  The autoencoders
          get what they were trained on, x ⊙ m / (1 − p); OpenCV gets the image with the
          dropped pixels marked in its mask.
  patch   a --patch × --patch square (default 10 × 10) set to grey (0 in [−1, 1]) at a random
          place with its top-left corner in rows/columns 4 … 14, over the digit.  The
          autoencoders get the patched image as it is (unscaled: a few missing pixels, whose
          expected input is the clean one); OpenCV gets it with the square marked.

Methods: the corrupted image as it is (the level to beat), the plain AE (standard-500: 784-500
tanh, trained on clean digits), the denoising AE (denoising-500: the same, trained on the
scaled {0, 2} masks), ``cv2.inpaint(..., INPAINT_TELEA)`` and ``cv2.inpaint(..., INPAINT_NS)``
with radius --radius (default 3), on 8-bit images (x + 1) · 127.5.  The score is the mean
squared error inside the corrupted region only, in the models' [−1, 1] units, pooled over all
corrupted pixels of the test set.  Outside the region OpenCV keeps the pixels and the
autoencoders do not (their whole output is a reconstruction); the score ignores that.

Without OpenCV (``pip install 'tinyae[inpaint]'``, i.e. opencv-python-headless) the Telea
and Navier–Stokes rows are skipped with a one-line note.

Written to --out (default results/inpainting/):
  inpainting_pixels.png, inpainting_patch.png  rows: input, corrupted, denoising AE, Telea,
                       Navier–Stokes (ten test digits, one per class)
  inpainting.json      the table: MSE inside the region per method and corruption, settings
  checkpoint_standard-500.npz, checkpoint_denoising-500.npz  (unless --from)

    python examples/inpainting.py --epochs 5
    python examples/inpainting.py --from results/nyu_autoencoders     # reuse the NYU script's models
"""
from common import (UsageError, done, fit_options, load_images, make_parser, n_params, one_per_class, run,
                    run_cli, setup_backend, positive_int)
import json
import pathlib
import time

import numpy as np

from nyu_autoencoders import P_DROP, build
from tinyae import plot
from tinyae.checkpoint import load_checkpoint
from tinyae.optim import Adam
from tinyae.train import fit

SHOWN = dict(value_range=(-1, 1))
MODELS = {"standard-500": None, "denoising-500": ["dropout", P_DROP]}

parser = make_parser("inpainting", __doc__.splitlines()[0], epochs=20, batch_size=256)
parser.add_argument("--from", dest="source", type=pathlib.Path, default=None, metavar="DIR",
                    help="load checkpoint_standard-500.npz and checkpoint_denoising-500.npz from DIR "
                         "(examples/nyu_autoencoders.py's --out) instead of training them")
parser.add_argument("--patch", type=positive_int, default=10, help="side of the grey square (default 10)")
parser.add_argument("--radius", type=positive_int, default=3, help="cv2.inpaint's radius (default 3)")


def corruptions(n, patch, seed):
    """The two corruptions of ``n`` digits as (N, 784) bool masks, True = corrupted (missing)."""
    rng = np.random.default_rng(seed)
    dropped = rng.random((n, 784)) < P_DROP                      # pixels: a fresh mask per digit
    square = np.zeros((n, 28, 28), dtype=bool)
    corners = rng.integers(4, 28 - 4 - patch + 1, size=(n, 2))   # top-left in rows/columns 4 … 14
    for i, (r, c) in enumerate(corners):
        square[i, r:r + patch, c:c + patch] = True
    return {"pixels": dropped, "patch": square.reshape(n, 784)}


def model_inputs(x, missing, kind):
    """What the autoencoders are given: pixels — x ⊙ m / (1 − p) as in training (dropped = 0);
    patch — the patched image as it is (the square = 0, grey in [−1, 1])."""
    kept = ~missing
    if kind == "pixels":
        return (x * kept / (1.0 - P_DROP)).astype(x.dtype)
    return (x * kept).astype(x.dtype)


def opencv_inpaint(cv2, x, missing, method, radius):
    """cv2.inpaint of every digit: 8-bit image (x + 1)·127.5 with the missing pixels at grey,
    8-bit mask (255 = repair), back to [−1, 1]."""
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    images = np.round((np.where(missing, 0.0, x) + 1.0) * 127.5).astype(np.uint8).reshape(-1, 28, 28)
    masks = missing.reshape(-1, 28, 28).astype(np.uint8) * 255
    out = np.stack([cv2.inpaint(img, m, radius, flag) for img, m in zip(images, masks)])
    return (out.reshape(len(x), 784).astype(np.float32) / 127.5 - 1.0)


def region_mse(estimate, x, missing):
    """Mean of (estimate − x)² over the missing pixels of all digits (pooled)."""
    return float(((estimate - x) ** 2)[missing].mean())


def get_models(args, x_train, x_test):
    models = {}
    for name, corruption in MODELS.items():
        if args.source is not None:
            path = args.source / f"checkpoint_{name}.npz"
            if not path.is_file():
                raise UsageError(f"--from {args.source}: no {path.name} there; run examples/nyu_autoencoders.py "
                                 f"--out {args.source} first, or leave --from out to train here")
            model = load_checkpoint(path).model
            print(f"model {name}: loaded from {path}", flush=True)
        else:
            model = build(500, corruption, args.seed)
            print(f"model {name}: 784-500-784 tanh, {n_params(model)} parameters"
                  + (f", trained on scaled dropout masks (p = {P_DROP})" if corruption else ""), flush=True)
            start = time.perf_counter()
            fit(model, Adam(model.parameters(), lr=args.lr), x_train, x_test,
                **fit_options(args, f"checkpoint_{name}.npz"))
            print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        model.eval()
        models[name] = model
    return models


def main(args):
    if args.patch > 20:
        parser.error(f"argument --patch: must be at most 20 (the square sits in rows 4 … 24), got {args.patch}")
    setup_backend(args)
    try:
        import cv2
    except ImportError:
        cv2 = None
        print("OpenCV (cv2) is not installed: the Telea and Navier-Stokes comparison is skipped "
              "(pip install 'tinyae[inpaint]')", flush=True)
    x_train, _, x_test, y_test = load_images(args, value_range="symmetric")
    models = get_models(args, x_train, x_test)

    masks = corruptions(len(x_test), args.patch, args.seed + 2)
    fixed = one_per_class(y_test, 10)
    table, seconds = {}, {}
    for kind, missing in masks.items():
        given = model_inputs(x_test, missing, kind)
        estimates = {"corrupted": np.where(missing, 0.0, x_test).astype(np.float32)}
        for name, model in models.items():
            t0 = time.perf_counter()
            estimates[name] = run(model.forward, given)
            seconds[f"{kind} {name}"] = time.perf_counter() - t0
        if cv2 is not None:
            for method in ("telea", "ns"):
                t0 = time.perf_counter()
                estimates[method] = opencv_inpaint(cv2, x_test, missing, method, args.radius)
                seconds[f"{kind} {method}"] = time.perf_counter() - t0
        table[kind] = {name: region_mse(est, x_test, missing) for name, est in estimates.items()}
        print(f"{kind}: MSE inside the corrupted region ({int(missing.sum()):,} pixels of {len(x_test):,} "
              "test digits): " + ", ".join(f"{k} {v:.4f}" for k, v in table[kind].items()), flush=True)

        shown = np.where(missing, 0.0, x_test)      # the corrupted image as a user sees it (grey holes)
        rows = {"input": x_test, "corrupted": shown, "denoising AE": estimates["denoising-500"]}
        if cv2 is not None:
            rows.update({"Telea": estimates["telea"], "Navier-Stokes": estimates["ns"]})
        what = ("half the pixels dropped" if kind == "pixels" else f"a grey {args.patch}×{args.patch} patch")
        plot.save_image_rows({label: r[fixed].reshape(-1, 28, 28) for label, r in rows.items()},
                             args.out / f"inpainting_{kind}.png", **SHOWN,
                             title=f"{what}: MSE inside it, denoising AE {table[kind]['denoising-500']:.3f}"
                                   + (f", Telea {table[kind]['telea']:.3f}, NS {table[kind]['ns']:.3f}"
                                      if cv2 is not None else ""))

    report = {"settings": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                           "p": P_DROP, "patch": args.patch, "radius": args.radius, "from": str(args.source or ""),
                           "train_images": len(x_train), "test_images": len(x_test), "data": args.data,
                           "opencv": getattr(cv2, "__version__", None)},
              "units": "mean squared error inside the corrupted region, pixels in [-1, 1]",
              "mse_in_region": table, "seconds": {k: round(v, 2) for k, v in seconds.items()}}
    (args.out / "inpainting.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"numbers in {args.out / 'inpainting.json'}", flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
