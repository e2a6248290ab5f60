"""A sparse autoencoder on MNIST, beside the same network without the sparsity penalty.

784-H sigmoid code / H-784 sigmoid output (H = --latent-dim, default 196), per-pixel BCE,
Adam 1e-2, batch 128.  The sparse AE adds a penalty on the code h:
  --penalty kl   β Σ_j KL(ρ ‖ ρ̂_j), ρ̂_j the mean activity of unit j over the batch
                 (--rho, default 0.05; --beta, default 0.01): every unit fires for a few
                 digits.  β weighs the KL against a BCE *averaged* over the 784 pixels, so the
                 UFLDL notes' β = 3 (with an error summed over pixels) is about 3/784 here;
                 β = 3 itself drowns the reconstruction (test BCE 0.24 instead of 0.11 after
                 20 epochs on the embedded digits)
  --penalty l1   λ Σ_j |h_j| per sample (--l1, default 1e-3)
Its effect shows in the code activity on the test set: most activations near 0, and every
unit's mean activity near ρ.

Figures in --out (default results/sparse_ae_mnist/):
  every epoch   reconstruction_N.png (sparse AE: 8 test digits over their reconstructions)
  at the end    code_activity.png (histogram of all code activations, plain vs sparse),
                unit_activity.png (histogram of each unit's mean activity ρ̂_j),
                filters.png (first-layer filters, plain vs sparse), loss_curves.png,
                checkpoint.npz (sparse AE) and checkpoint_plain.npz
"""
from common import (FILTERS_TITLE, done, fit_options, load_images, make_parser, n_params, nonneg_float,
                    one_per_class, open_unit, run, run_cli, save_loss_curves, setup_backend)
from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

parser = make_parser("sparse_ae_mnist", __doc__.splitlines()[0], epochs=20, batch_size=128, lr=1e-2,
                     latent_dim=196)
parser.add_argument("--penalty", choices=["kl", "l1"], default="kl")
parser.add_argument("--rho", type=open_unit, default=0.05, help="target mean activity, in (0, 1) (kl)")
parser.add_argument("--beta", type=nonneg_float, default=0.01, help="weight >= 0 of the KL penalty (kl)")
parser.add_argument("--l1", type=nonneg_float, default=1e-3, help="weight >= 0 of the L1 penalty (l1)")


def main(args):
    penalty = ["kl", args.rho, args.beta] if args.penalty == "kl" else ["l1", args.l1]
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args)
    fixed = one_per_class(y_test, 8)

    def build(penalty):
        return models.build("sparse-ae", hidden=args.latent_dim, penalty=penalty, seed=args.seed)

    def figures(epoch, model, history):
        model.eval()
        plot.save_reconstructions(x_test[fixed], run(model.forward, x_test[fixed]),
                                  args.out / f"reconstruction_{epoch}.png",
                                  title=f"sparse AE after epoch {epoch}: test digits and reconstructions")

    plain = build(None)
    print(f"== plain AE: 784-{args.latent_dim} sigmoid / {args.latent_dim}-784, {n_params(plain)} "
          "parameters, BCE per pixel", flush=True)
    hist_plain = fit(plain, Adam(plain.parameters(), lr=args.lr), x_train, x_test,
                     **fit_options(args, "checkpoint_plain.npz"))

    sparse = build(penalty)
    print(f"== sparse AE: the same + {sparse.penalty!r} (loss = BCE per pixel + sparsity)", flush=True)
    hist_sparse = fit(sparse, Adam(sparse.parameters(), lr=args.lr), x_train, x_test, callbacks=[figures],
                      **fit_options(args))

    # The penalty's effect: code activity on the test set.
    codes = {}
    for label, model in (("plain AE", plain), ("sparse AE", sparse)):
        model.eval()
        codes[label] = run(model.encode, x_test)
        h = codes[label]
        print(f"{label:>9}: mean code activity {h.mean():.3f}, share of activations < 0.1: "
              f"{(h < 0.1).mean():.0%}, units with mean activity < 0.1: {(h.mean(axis=0) < 0.1).mean():.0%}",
              flush=True)
    plot.save_histograms(codes, args.out / "code_activity.png", bins=50, logy=True,
                         xlabel="code activation h (sigmoid)", ylabel="count (test digits × units)",
                         title="code activity on the test set")
    plot.save_histograms({k: h.mean(axis=0) for k, h in codes.items()}, args.out / "unit_activity.png",
                         bins=40, xlabel="mean activity of a unit over the test set (ρ̂_j)",
                         ylabel="number of units",
                         title="per-unit mean activity" + (f" (target ρ = {args.rho})" * (args.penalty == "kl")))
    plot.save_filter_comparison(plain.encoder[0].weight.data, sparse.encoder[0].weight.data,
                                args.out / "filters.png", labels=("plain AE", "sparse AE"), n=36,
                                title=FILTERS_TITLE)
    if len(hist_plain) and len(hist_sparse):
        records = [{"epoch": a["epoch"], "train_plain": a["train_loss"], "test_plain": a["test_loss"],
                    "train_sparse_recon": b["train_recon"], "test_sparse_recon": b["test_recon"],
                    "train_sparsity": b["train_sparsity"], "test_sparsity": b["test_sparsity"]}
                   for a, b in zip(hist_plain.records, hist_sparse.records)]
        save_loss_curves(records, args.out / "loss_curves.png", logy=True,
                         title="reconstruction BCE per pixel and the sparsity penalty")
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
