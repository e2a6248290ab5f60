"""A linear autoencoder finds PCA's subspace: x̂ = V W x, trained with MSE on centred digits.

At its minimum, V W is the orthogonal projection onto the top-k principal subspace (Baldi &
Hornik, 1989), but V and W themselves are any basis of it (V A, A⁻¹ W gives the same map).
So we compare subspaces — the principal angles between the span of the decoder's columns and
the top-k right singular vectors of the centred training data (scipy.linalg.subspace_angles)
— and the test reconstruction errors.  Two linear AEs are trained (no biases, Adam 1e-3,
batch 64, k = --latent-dim, default 16): untied (V, W free) and tied (V = Wᵀ).

What to expect.  On full MNIST after 20 epochs both span PCA's subspace to within a few
degrees (Adam's steps leave a noise floor of ~2-6°; a lower --lr goes closer, slower) with a
test MSE within 1% of PCA's.  Every other critical point of a linear AE is a saddle, and
the last directions are the slowest to find: with few steps (the 4,000 embedded digits)
the untied AE can sit near a saddle for a long time, its subspace holding PCA's top 15
directions and a mix of lower ones instead of the 16th — one angle near 90°, the others
small, the MSE still within ~2% of PCA's.

Figures in --out (default results/linear_ae_vs_pca/):
  at the end    components.png (PCA's components beside the linear AE's: the principal axes
                within the span of its decoder, which PCA's should match up to sign),
                reconstructions.png (rows: test digit / PCA / linear AE),
                loss_curves.png (both AEs' MSE per pixel, and PCA's as a reference),
                checkpoint.npz (untied AE) and checkpoint_tied.npz
"""
from common import (done, fit_options, load_images, make_parser, n_params, one_per_class, run,
                    run_cli, save_loss_curves, setup_backend, UsageError)
import numpy as np
from scipy.linalg import subspace_angles

from tinyae import models, plot
from tinyae.backend import to_numpy
from tinyae.optim import Adam
from tinyae.train import fit

parser = make_parser("linear_ae_vs_pca", __doc__.splitlines()[0], epochs=20, batch_size=64, latent_dim=16)


def main(args):
    k = args.latent_dim
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args)
    most = min(x_train.shape)          # PCA of n images of d pixels has at most min(n, d) directions
    if k > most:
        raise UsageError(f"--latent-dim {k} is more than PCA can give here: at most {most} directions "
                         f"from {x_train.shape[0]:,} training images of {x_train.shape[1]} pixels"
                         f"{' (raise --limit)' if x_train.shape[0] < x_train.shape[1] else ''}; "
                         f"choose --latent-dim <= {most}")
    mean = x_train.mean(axis=0)
    x_train, x_test = x_train - mean, x_test - mean          # centred: no biases needed

    # PCA: the top-k right singular vectors of the centred training data.
    _, sv, vt = np.linalg.svd(x_train.astype(np.float64), full_matrices=False)
    pcs = vt[:k]                                              # (k, 784), orthonormal rows
    pca_mse = float(np.mean((x_test @ pcs.T @ pcs - x_test) ** 2))
    print(f"PCA: the top {k} components explain {np.sum(sv[:k] ** 2) / np.sum(sv ** 2):.1%} of the training "
          f"variance; test MSE per pixel {pca_mse:.5f}", flush=True)

    def decoder_columns(model):
        """The decoder's k columns as a (784, k) host array (tied: the encoder's weight, transposed)."""
        w = to_numpy(model.decoder[0].weight.data)
        return w if w.shape == (x_train.shape[1], k) else w.T

    def angles(model):
        """Principal angles (degrees, largest first) between the decoder's span and PCA's."""
        return np.degrees(subspace_angles(decoder_columns(model).astype(np.float64), pcs.T))

    def report(epoch, model, history):
        a = angles(model)
        print(f"  principal angles to PCA's subspace after epoch {epoch}: largest {a[0]:.2f}°, "
              f"median {np.median(a):.2f}°", flush=True)

    results = {}
    for tied, checkpoint in ((False, "checkpoint.npz"), (True, "checkpoint_tied.npz")):
        name = f"linear AE ({'tied' if tied else 'untied'})"
        model = models.build("linear-ae", in_features=x_train.shape[1], latent=k, tied=tied, seed=args.seed)
        print(f"== {name}: 784-{k}-784, no biases, {n_params(model)} parameters, MSE per pixel", flush=True)
        history = fit(model, Adam(model.parameters(), lr=args.lr), x_train, x_test, callbacks=[report],
                      **fit_options(args, checkpoint))
        model.eval()
        recon = run(model.forward, x_test)
        results[name] = dict(model=model, history=history, recon=recon, angles=angles(model),
                             mse=float(np.mean((recon - x_test) ** 2)))

    print(f"\n{'':<22}{'largest angle':>14}{'median angle':>14}{'angles < 5°':>13}{'test MSE':>11}")
    print(f"{f'PCA (top {k})':<22}{'-':>14}{'-':>14}{'-':>13}{pca_mse:>11.5f}")
    for name, r in results.items():
        a = r["angles"]
        print(f"{name:<22}{a[0]:>13.2f}°{np.median(a):>13.2f}°{f'{np.sum(a < 5)} of {k}':>13}{r['mse']:>11.5f}")

    # PCA's components beside the principal axes inside the untied AE's subspace.
    untied = results["linear AE (untied)"]
    q, _ = np.linalg.qr(decoder_columns(untied["model"]).astype(np.float64))     # orthonormal basis (784, k)
    _, _, rot = np.linalg.svd(x_train @ q, full_matrices=False)                  # principal axes within it
    axes = (q @ rot.T).T                                                         # (k, 784)
    axes *= np.sign(np.sum(axes * pcs, axis=1))[:, None]                         # PCA's signs
    plot.save_filter_comparison(pcs, axes, args.out / "components.png", n=k,
                                labels=("PCA components", "linear AE: principal axes of its subspace"),
                                title=f"the top {k} directions, in order (red +, blue −)")

    fixed = one_per_class(y_test, 8)
    tied = results["linear AE (tied)"]
    plot.save_reconstructions(x_test[fixed] @ pcs.T @ pcs + mean, untied["recon"][fixed] + mean,
                              args.out / "reconstructions.png", noisy=x_test[fixed] + mean,
                              row_labels=["test digit", f"PCA, k = {k}", "linear AE (untied)"],
                              title=f"test MSE per pixel: PCA {pca_mse:.4f}, linear AE {untied['mse']:.4f}")
    if len(untied["history"]) and len(tied["history"]):
        records = [{"epoch": a["epoch"], "train_untied": a["train_loss"], "test_untied": a["test_loss"],
                    "train_tied": b["train_loss"], "test_tied": b["test_loss"], "test_PCA": pca_mse}
                   for a, b in zip(untied["history"].records, tied["history"].records)]
        save_loss_curves(records, args.out / "loss_curves.png", logy=True,
                         title=f"linear AEs (k = {k}) vs PCA: MSE per pixel")
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
