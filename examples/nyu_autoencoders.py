"""The NYU deep-learning lecture's autoencoder notebook: under- vs over-complete, standard vs denoising.

The notebook's models and settings (MNIST in [−1, 1], i.e. ToTensor + Normalize(0.5, 0.5)):
  standard-30    784 → 30 tanh | 30 → 784 tanh, MSE per pixel     (under-complete)
  standard-500   784 → 500 tanh | 500 → 784 tanh, MSE              (over-complete)
  denoising-500  the same, trained on corrupted inputs against the clean ones
Adam 1e-3, batch 256, 20 epochs (PyTorch's default init).  The notebook corrupts with
``nn.Dropout()(torch.ones(img.shape))``: a mask of 0s and **2s** (p = 0.5, the kept half scaled
by 1/(1 − p)), so the noisy image has half its pixels set to 0 — mid-grey in [−1, 1] — and
the other half doubled.  ``--mask scaled`` (default) is that, tinyae's
``corruption=("dropout", 0.5)``; ``--mask unscaled`` is tinyae's masking noise
``("mask", 0.5)`` (0s and 1s: the kept pixels unchanged).

Written to --out (default results/nyu_autoencoders/):
  reconstructions.png  test digits and the three models' reconstructions of them
  denoising.png        corrupted test digits, the originals, what standard-500 and
                       denoising-500 make of the corrupted ones
  kernels_d30.png       the 30 encoder kernels (rows of the first weight, 28×28, red +, blue −)
  kernels_d500.png      the first 36 kernels of standard-500 beside denoising-500's
  interpolation.png    from one test digit to another: a cross-fade in pixel space (top) and a
                       straight line between the two codes of standard-30, decoded (bottom)
  nyu.json             test MSE of each model on clean and on corrupted test digits (the same
                       seeded masks for all), the seconds each training took
  checkpoint_<model>.npz

    python examples/nyu_autoencoders.py --epochs 5
    python examples/nyu_autoencoders.py --epochs 1 --limit 1000 --data embedded   # a quick look
"""
from common import (done, fit_options, load_images, make_parser, n_params, one_per_class, run, run_cli,
                    setup_backend)
import json
import time

import numpy as np

from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

SHOWN = dict(value_range=(-1, 1))     # pixels in [−1, 1]; corrupted ones (2·x) are clipped for display
P_DROP = 0.5

parser = make_parser("nyu_autoencoders", __doc__.splitlines()[0], epochs=20, batch_size=256)
parser.add_argument("--mask", choices=["scaled", "unscaled"], default="scaled",
                    help="denoising corruption: scaled {0, 2} masks as the notebook's nn.Dropout() on ones "
                         "(default), or tinyae's unscaled {0, 1} masking noise")


def build(hidden, corruption, seed):
    """784 → hidden tanh | hidden → 784 tanh, MSE (mean): the notebook's Encoder/Decoder."""
    return models.build("mlp-ae", sizes=[784, hidden], code_activation="tanh", output="tanh", loss="mse",
                        corruption=corruption, seed=seed)


def corrupt(x, kind, seed):
    """The test digits corrupted as in training, with masks from their own seeded stream."""
    keep = np.random.default_rng(seed).random(x.shape) >= P_DROP
    return (x * keep / (1.0 - P_DROP) if kind == "dropout" else x * keep).astype(x.dtype), keep


def main(args):
    setup_backend(args)
    x_train, _, x_test, y_test = load_images(args, value_range="symmetric")
    kind = "dropout" if args.mask == "scaled" else "mask"
    setups = {"standard-30": (30, None), "standard-500": (500, None), "denoising-500": (500, [kind, P_DROP])}
    x_bad, _ = corrupt(x_test, kind, args.seed + 1)
    trained, numbers = {}, {}
    for name, (hidden, corruption) in setups.items():
        model = build(hidden, corruption, args.seed)
        print(f"model {name}: 784-{hidden}-784 tanh, {n_params(model)} parameters"
              + (f", trained on {args.mask} {kind} masks (p = {P_DROP})" if corruption else ""), flush=True)
        start = time.perf_counter()
        history = fit(model, Adam(model.parameters(), lr=args.lr), x_train, x_test,
                      **fit_options(args, f"checkpoint_{name}.npz"))
        seconds = time.perf_counter() - start
        model.eval()
        clean, noisy = run(model.forward, x_test), run(model.forward, x_bad)
        numbers[name] = {"hidden": hidden, "corruption": corruption, "seconds": round(seconds, 1),
                         "test_mse_clean": float(np.mean((clean - x_test) ** 2)),
                         "test_mse_corrupted": float(np.mean((noisy - x_test) ** 2))}
        trained[name] = (model, clean, noisy)
        if len(history):
            print(f"{name}: test MSE {numbers[name]['test_mse_clean']:.4f} on clean digits, "
                  f"{numbers[name]['test_mse_corrupted']:.4f} on corrupted ones ({seconds:.0f} s)", flush=True)

    fixed = one_per_class(y_test, 10)
    grid = np.concatenate([x_test[fixed]] + [trained[n][1][fixed] for n in setups])
    plot.save_image_grid(grid.reshape(-1, 28, 28), args.out / "reconstructions.png", nrow=10, **SHOWN,
                         title="rows: test digits; standard-30, standard-500, denoising-500 reconstructions")
    grid = np.concatenate([x_bad[fixed], x_test[fixed], trained["standard-500"][2][fixed],
                           trained["denoising-500"][2][fixed]])
    plot.save_image_grid(grid.reshape(-1, 28, 28), args.out / "denoising.png", nrow=10, **SHOWN,
                         title=f"rows: {args.mask}-masked digits, originals; standard-500, denoising-500 on the masked")
    weights = {n: backend_weight(trained[n][0]) for n in setups}
    plot.save_filters(weights["standard-30"], args.out / "kernels_d30.png", nrow=10,
                      title="standard-30: the 30 encoder kernels")
    plot.save_filter_comparison(weights["standard-500"], weights["denoising-500"], args.out / "kernels_d500.png",
                                labels=("standard-500", "denoising-500"), n=36,
                                title="over-complete kernels: standard vs denoising training")

    # pixel space: a cross-fade; latent space: decode the straight line between the codes
    a, b = x_test[fixed[4]], x_test[fixed[9]]            # a 4 and a 9
    t = np.linspace(0.0, 1.0, 10, dtype=np.float32)[:, None]
    pixels = (1 - t) * a + t * b
    model = trained["standard-30"][0]
    za, zb = run(model.encode, np.stack([a, b]))
    latent = run(model.decode, ((1 - t) * za + t * zb).astype(np.float32))
    plot.save_reconstructions(pixels.reshape(-1, 28, 28), latent.reshape(-1, 28, 28), args.out / "interpolation.png",
                              n=10, row_labels=["pixel space", "latent space"], **SHOWN,
                              title="from a 4 to a 9, t = 0 … 1: (1 − t)·x_a + t·x_b  vs  decode((1 − t)·z_a + t·z_b)")

    report = {"settings": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                           "mask": args.mask, "p": P_DROP, "train_images": len(x_train),
                           "test_images": len(x_test), "data": args.data},
              "models": numbers}
    (args.out / "nyu.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"numbers in {args.out / 'nyu.json'}", flush=True)
    done(args)


def backend_weight(model):
    """The first Linear's weight (hidden, 784) on the host."""
    from tinyae import backend
    return backend.to_numpy(model.encoder[0].weight.data)


if __name__ == "__main__":
    run_cli(main, parser)
