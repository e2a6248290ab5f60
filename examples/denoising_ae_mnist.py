"""A denoising autoencoder on MNIST, beside a plain one with the same architecture.

Both are 784-H (sigmoid code) / H-784 (sigmoid output) with per-pixel BCE, H = --latent-dim
(default 64), Adam 1e-2 (at 1e-3 the sigmoid code learns slowly), batch 128.  The denoising
AE sees corrupted digits and is asked for the clean ones (Vincent et al., 2008):
  --noise gaussian   x̃ = x + σ ε, ε ~ N(0, I)            (--noise-level σ, default 0.5)
  --noise mask       x̃ = x ⊙ m, a fraction p of pixels 0  (--noise-level p, default 0.3)
The plain AE is trained on clean digits.  Test losses are on clean digits (no corruption in
eval mode); the denoising comparison at the end feeds both models the same noisy test digits.

Figures in --out (default results/denoising_ae_mnist/):
  every epoch   denoised_N.png (rows: noisy input / denoised output / clean target)
  at the end    denoised_plain.png (the same for the plain AE), filters.png (the first-layer
                filters of the plain and the denoising AE side by side), loss_curves.png,
                checkpoint.npz (denoising AE) and checkpoint_plain.npz

    python examples/denoising_ae_mnist.py --noise mask --epochs 30
"""
from common import (FILTERS_TITLE, done, fit_options, load_images, make_parser, n_params, nonneg_float,
                    one_per_class, run, run_cli, save_loss_curves, setup_backend)
import numpy as np

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

parser = make_parser("denoising_ae_mnist", __doc__.splitlines()[0], epochs=20, batch_size=128, lr=1e-2,
                     latent_dim=64)
parser.add_argument("--noise", choices=["gaussian", "mask"], default="gaussian")
parser.add_argument("--noise-level", type=nonneg_float, default=None,
                    help="σ >= 0 for gaussian (default 0.5), p in [0, 1) for mask (default 0.3)")


def main(args):
    level = args.noise_level if args.noise_level is not None else {"gaussian": 0.5, "mask": 0.3}[args.noise]
    if args.noise == "mask" and level >= 1:
        parser.error(f"argument --noise-level: with --noise mask it is the fraction p of pixels set to 0, "
                     f"in [0, 1); got {level}")
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args)

    def build(corruption):
        return models.build("mlp-ae", sizes=[784, args.latent_dim], code_activation="sigmoid", loss="bce",
                            corruption=corruption, seed=args.seed)     # same seed: same initial weights

    def corrupt(x, seed=12345):
        """The training corruption, applied on the host with a fixed seed (for figures and scores)."""
        rng = np.random.default_rng(seed)
        if args.noise == "gaussian":
            return data.gaussian_noise(x, level, rng, clip=None)
        return data.dropout_noise(x, level, rng)

    fixed = one_per_class(y_test, 8)
    noisy_test = corrupt(x_test)
    name = f"{args.noise} noise {'σ' if args.noise == 'gaussian' else 'p'} = {level}"

    def denoised_figure(model, path, what):
        model.eval()
        out = run(model.forward, noisy_test[fixed])
        # rows top to bottom: noisy input / output / clean target (save_reconstructions stacks
        # noisy, originals, reconstructions — so the output goes in the middle slot)
        plot.save_reconstructions(out, x_test[fixed], path, noisy=noisy_test[fixed], title=what,
                                  row_labels=["noisy input", "denoised output", "clean target"])

    plain = build(None)
    print(f"== plain AE: mlp-ae 784-{args.latent_dim}-784, {n_params(plain)} parameters, BCE per pixel, "
          "clean inputs", flush=True)
    hist_plain = fit(plain, Adam(plain.parameters(), lr=args.lr), x_train, x_test,
                     **fit_options(args, "checkpoint_plain.npz"))

    dae = build([args.noise, level])
    print(f"== denoising AE: the same, trained on inputs with {name} (train loss on noisy inputs, "
          "test loss on clean ones)", flush=True)
    hist_dae = fit(dae, Adam(dae.parameters(), lr=args.lr), x_train, x_test, **fit_options(args),
                   callbacks=[lambda epoch, model, history: denoised_figure(
                       model, args.out / f"denoised_{epoch}.png", f"denoising AE after epoch {epoch} ({name})")])

    denoised_figure(plain, args.out / "denoised_plain.png", f"plain AE given {name}")
    denoised_figure(dae, args.out / "denoised.png", f"denoising AE given {name}")
    plot.save_filter_comparison(plain.encoder[0].weight.data, dae.encoder[0].weight.data,
                                args.out / "filters.png", labels=("plain AE", "denoising AE"), n=36,
                                title=FILTERS_TITLE)
    if len(hist_dae) and len(hist_plain):
        records = [{"epoch": a["epoch"], "train_plain": a["train_loss"], "test_plain": a["test_loss"],
                    "train_denoising": b["train_loss"], "test_denoising": b["test_loss"]}
                   for a, b in zip(hist_plain.records, hist_dae.records)]
        save_loss_curves(records, args.out / "loss_curves.png",
                         title="BCE per pixel (denoising train: on noisy inputs)")

    # How well does each model clean up noisy test digits? MSE to the clean digits.
    for label, model in (("plain AE", plain), ("denoising AE", dae)):
        model.eval()
        mse = float(np.mean((run(model.forward, noisy_test) - x_test) ** 2))
        print(f"{label:>12}: MSE to the clean test digits from noisy inputs {mse:.4f}", flush=True)
    print(f"{'(no model)':>12}: MSE of the noisy inputs themselves {np.mean((noisy_test - x_test) ** 2):.4f}")
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
