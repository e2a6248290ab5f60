"""The Keras blog's VAE with a 2-D code, as published, beside the consistent parameterisation.

"Building Autoencoders in Keras" (the variational autoencoder section): 784-64-2 with ReLU,
heads z_mean and z_log_sigma, decoder 2-64 ReLU -784 sigmoid, Keras's BCE × 784 + KL,
Adam (Keras's defaults), batch 32, the blog's 100 epochs; tinyae.models.keras.KerasVAE.

    --parameterisation keras       as published: z = μ + exp(z_log_sigma)·ε, ε ~ N(0, 0.1²), and
                                   KL = −½ Σ (1 + z_log_sigma − μ² − exp(z_log_sigma))
    --parameterisation consistent  the same net with z = μ + exp(½ s)·ε, ε ~ N(0, 1) (the KL's own
                                   reading of s as a log-variance)
    --parameterisation both        (default) both, from the same weights on the same batches
                                   and the same ε draws, each in its own --out subfolder, and a
                                   comparison at the end (docs/models.md, "The Keras VAE-2D")

Figures in --out/<parameterisation>/ (default results/vae2d_keras/):
  every epoch   reconstruction_N.png
  at the end    latent_scatter.png (test codes μ by digit, as the blog's figure),
                manifold.png (15×15 decoded grid over --grid-range: the blog's [−15, 15], or
                "quantile" for N(0, 1) quantiles 0.05…0.95; with a range, manifold_quantile.png
                too), samples.png (64 decoded z ~ N(0, I)),
                loss_curves.png, checkpoint.npz

Losses are Keras's: per sample (784 × mean BCE + KL), averaged over the batch.

    python examples/vae2d_keras.py --epochs 10
    python examples/vae2d_keras.py --parameterisation keras --grid-range quantile
"""
from common import (UsageError, decoder_fn, fit_options, load_images, make_parser, n_params,
                    one_per_class, run, run_cli, save_loss_curves, setup_backend)
import numpy as np

from tinyae import models, plot
from tinyae.models.keras import KerasAdam
from tinyae.train import fit


def grid_range(text):
    """'quantile' → None (N(0, 1) quantiles); 'R' → (−R, R); 'LO,HI' → (LO, HI)."""
    import argparse
    if text == "quantile":
        return None
    try:
        parts = [float(t) for t in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return (-parts[0], parts[0])
    if len(parts) == 2 and parts[0] < parts[1]:
        return tuple(parts)
    raise argparse.ArgumentTypeError(f"expected 'quantile', a positive number R (the grid [−R, R]) or "
                                     f"LO,HI with LO < HI, got {text!r}")


parser = make_parser("vae2d_keras", __doc__.splitlines()[0], epochs=100, batch_size=32)
parser.add_argument("--parameterisation", choices=["keras", "consistent", "both"], default="both",
                    help="keras: as published; consistent: z = μ + exp(s/2)·ε, ε ~ N(0, 1); both (default)")
parser.add_argument("--epsilon-std", type=float, default=0.1,
                    help="the std of ε in the published sampler (default: the blog's 0.1)")
parser.add_argument("--grid-range", type=grid_range, default=(-15.0, 15.0), metavar="quantile|R|LO,HI",
                    help="the manifold's z grid: the blog's 15 (i.e. [−15, 15], default) or quantile")


def train_one(args, kind, x_train, y_train, x_test, y_test):
    """Train one parameterisation into args.out/kind; its summary numbers."""
    out = args.out / kind
    out.mkdir(parents=True, exist_ok=True)
    model = models.build("vae-784-64-2-keras", parameterisation=kind, epsilon_std=args.epsilon_std,
                         seed=args.seed)
    optimizer = KerasAdam(model.parameters(), lr=args.lr)
    print(f"\n[{kind}] vae-784-64-2-keras, {n_params(model)} parameters; sampler "
          + ("z = μ + exp(s)·ε, ε ~ N(0, %g²)" % args.epsilon_std if kind == "keras"
             else "z = μ + exp(s/2)·ε, ε ~ N(0, 1)") + "; KL with exp(s)", flush=True)
    fixed = one_per_class(y_test, 8)

    def figures(epoch, model, history):
        model.eval()
        plot.save_reconstructions(x_test[fixed], run(model.reconstruct, x_test[fixed]),
                                  out / f"reconstruction_{epoch}.png", title=f"[{kind}] epoch {epoch}")

    options = fit_options(args)
    options["checkpoint"] = out / "checkpoint.npz"
    history = fit(model, optimizer, x_train, x_test, callbacks=[figures], **options)
    model.eval()
    mu = run(lambda x: model.encode(x, "deterministic"), x_test)
    s = run(lambda x: model.encode(x)[1], x_test)                    # z_log_sigma of the test digits
    sampled_std = np.exp(s) * args.epsilon_std if kind == "keras" else np.exp(0.5 * s)
    plot.save_latent_scatter(mu, y_test, out / "latent_scatter.png",
                             title=f"[{kind}] test codes z_mean ({len(history)} epochs)")
    where = "N(0, 1) quantiles" if args.grid_range is None else f"[{args.grid_range[0]:g}, {args.grid_range[1]:g}]²"
    plot.save_manifold(decoder_fn(model), out / "manifold.png", n=15, grid_range=args.grid_range,
                       title=f"[{kind}] decoded z over {where}")
    if args.grid_range is not None:      # and the prior's own quantiles, for comparison
        plot.save_manifold(decoder_fn(model), out / "manifold_quantile.png", n=15,
                           title=f"[{kind}] decoded z over N(0, 1) quantiles 0.05…0.95")
    z = np.random.default_rng(args.seed).standard_normal((64, 2)).astype(np.float32)
    plot.save_samples(decoder_fn(model)(z), out / "samples.png", title=f"[{kind}] decoded z ~ N(0, I)")
    if len(history):
        save_loss_curves(history.records, out / "loss_curves.png", title=f"[{kind}] loss per sample")
    recon, kl = test_terms(model, x_test)
    # the KL of the posterior the sampler really draws from, N(μ, σ²) with log σ = log σ_ε + s
    # (keras) or ½ s (consistent), to N(0, I): what the ELBO needs, whatever the loss says
    log_std = s + np.log(args.epsilon_std) if kind == "keras" else 0.5 * s
    true_kl = float(np.mean(-0.5 * np.sum(1 + 2 * log_std - mu ** 2 - np.exp(2 * log_std), axis=1)))
    last = history.last() if len(history) else {}
    summary = {"kind": kind, "epochs": len(history), "train_loss": last.get("train_loss"),
               "test_loss": recon + kl, "recon": recon, "kl": kl, "true_kl": true_kl,
               "neg_elbo": recon + true_kl, "mu_std": mu.std(axis=0), "mu_absmax": np.abs(mu).max(),
               "s_mean": s.mean(), "sampled_std": float(np.median(sampled_std))}
    print(f"[{kind}] test loss {summary['test_loss']:.2f} per sample (recon {recon:.2f} + KL as written "
          f"{kl:.2f}); KL of the sampled posterior {true_kl:.2f}, so −ELBO {summary['neg_elbo']:.2f}; "
          f"z_mean std per axis {np.array2string(summary['mu_std'], precision=2)}, |z_mean| ≤ "
          f"{summary['mu_absmax']:.1f}; mean z_log_sigma {summary['s_mean']:.2f}; median sampled std "
          f"{summary['sampled_std']:.3f}", flush=True)
    return summary


def test_terms(model, x_test, chunk=1000):
    """(recon, KL as the loss writes it) per sample over the test set, z sampled as in training."""
    from common import on_device
    recon = kl = 0.0
    for i in range(0, len(x_test), chunk):
        xb = on_device(x_test[i:i + chunk])
        _, parts = model.loss(xb)
        recon += float(parts["recon"]) * len(xb)
        kl += float(parts["kl"]) * len(xb)
    return recon / len(x_test), kl / len(x_test)


def main(args):
    if not (np.isfinite(args.epsilon_std) and args.epsilon_std > 0):
        raise UsageError(f"--epsilon-std must be a positive number, got {args.epsilon_std}")
    setup_backend(args)
    x_train, y_train, x_test, y_test = load_images(args)
    kinds = ["keras", "consistent"] if args.parameterisation == "both" else [args.parameterisation]
    results = [train_one(args, k, x_train, y_train, x_test, y_test) for k in kinds]
    if len(results) == 2:
        print("\n| parameterisation | test loss per sample (as trained) | recon | KL as written | "
              "KL of the sampled posterior | −ELBO | z_mean std (z1, z2) | max abs(z_mean) | "
              "median std of the sampled z |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in results:
            print(f"| {r['kind']} | {r['test_loss']:.2f} | {r['recon']:.2f} | {r['kl']:.2f} | {r['true_kl']:.2f} | "
                  f"{r['neg_elbo']:.2f} | {r['mu_std'][0]:.2f}, {r['mu_std'][1]:.2f} | {r['mu_absmax']:.1f} | "
                  f"{r['sampled_std']:.3f} |", flush=True)
    print("wrote to " + ", ".join(f"{args.out / k}/" for k in kinds) + ": reconstruction_{1..N}.png, "
          "latent_scatter.png, manifold.png, " + ("manifold_quantile.png, " if args.grid_range else "")
          + "samples.png, loss_curves.png, checkpoint.npz", flush=True)


if __name__ == "__main__":
    run_cli(main, parser)
