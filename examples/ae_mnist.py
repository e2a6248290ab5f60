"""Dense autoencoders on MNIST, three classic set-ups (``--arch``).

tutorial     the first tutorial's AE on 14×14 digits in [-1, 1]: 196-64-16-3 / 3-16-64-196,
             LeakyReLU(0.2), Tanh output, MSE; Adam 1e-3, batch 64, 20 epochs.
784-32       the Keras blog's AE: 784-32 ReLU / 32-784 sigmoid, per-pixel BCE, batch 256,
             50 epochs (train/test loss about 0.09).
784-250-16   784-250-16 (tanh) / 16-320-784 (sigmoid output), MSE, batch 200, 50 epochs
             (MSE from about 0.07 to about 0.01); also decodes codes drawn from N(0, 0.33²).

Losses are averages over pixels (and samples).  Figures in --out (default results/ae_mnist/):
  every epoch   reconstruction_N.png (8 test digits over their reconstructions)
  at the end    latent_scatter.png (test codes by label; PCA of them for k > 3),
                code_histogram.png (the code coordinates of the test set),
                generated.png (784-250-16 only: 64 decoded codes from N(0, 0.33²)),
                loss_curves.png, and checkpoint.npz

    python examples/ae_mnist.py --arch 784-250-16 --epochs 10
"""
from common import (arch_defaults, done, fit_options, load_images, make_parser, n_params, one_per_class,
                    run, setup_backend)  # first: it sets the BLAS threads
import numpy as np

from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

ARCHS = {
    "tutorial": dict(builder="dense-196-64-16", size=14, range="symmetric", loss="MSE",
                     epochs=20, batch_size=64, latent_dim=3),
    "784-32": dict(builder="ae-784-32", size=28, range="unit", loss="BCE",
                   epochs=50, batch_size=256, latent_dim=32),
    "784-250-16": dict(builder="ae-784-250-16", size=28, range="unit", loss="MSE",
                       epochs=50, batch_size=200, latent_dim=16),
}
CODE_STD = 0.33     # the spread of the codes the 784-250-16 tutorial decodes into new digits

parser = make_parser("ae_mnist", __doc__.splitlines()[0], epochs=None, batch_size=None, latent_dim=True)
parser.add_argument("--arch", choices=list(ARCHS), default="tutorial",
                    help="; ".join(f"{k}: {v['builder']}, {v['epochs']} epochs, batch {v['batch_size']}, "
                                   f"code size {v['latent_dim']}" for k, v in ARCHS.items()))
args = parser.parse_args()
arch = arch_defaults(args, ARCHS)
if args.arch == "784-250-16" and args.latent_dim != 16:
    parser.error("--arch 784-250-16 has a fixed 16-D code; leave --latent-dim out")
setup_backend(args)

x_train, y_train, x_test, y_test = load_images(args, size=arch["size"], value_range=arch["range"])
side = arch["size"]
shown = dict(value_range=(-1, 1) if arch["range"] == "symmetric" else (0, 1))
scale = 4 if side == 14 else 2

latent = {} if args.arch == "784-250-16" else {"latent": args.latent_dim}
model = models.build(arch["builder"], seed=args.seed, **latent)
optimizer = Adam(model.parameters(), lr=args.lr)
print(f"model: {arch['builder']} with a {args.latent_dim}-D code, {n_params(model)} parameters; "
      f"loss = {arch['loss']} averaged over pixels", flush=True)

fixed = one_per_class(y_test, 8)


def figures(epoch, model, history):
    model.eval()
    recon = run(model.forward, x_test[fixed])
    plot.save_reconstructions(x_test[fixed].reshape(-1, side, side), recon.reshape(-1, side, side),
                              args.out / f"reconstruction_{epoch}.png", scale=scale,
                              title=f"epoch {epoch}: test digits and reconstructions", **shown)


history = fit(model, optimizer, x_train, x_test, callbacks=[figures], **fit_options(args))

model.eval()
codes = run(model.encode, x_test)
if args.latent_dim >= 2:
    plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                             title=f"test digits' {args.latent_dim}-D codes")
plot.save_histograms({f"all {codes.shape[1]} coordinates": codes}, args.out / "code_histogram.png",
                     bins=60, xlabel="code value", ylabel="count (test digits × coordinates)",
                     title=f"code coordinates on the test set (mean {codes.mean():.2f}, "
                           f"std {codes.std():.2f})")
if args.arch == "784-250-16":
    z = np.random.default_rng(args.seed).normal(0.0, CODE_STD, size=(64, 16)).astype(np.float32)
    plot.save_samples(run(model.decode, z).reshape(-1, side, side), args.out / "generated.png",
                      title=f"decoded codes z ~ N(0, {CODE_STD}²)", **shown)
if len(history):
    plot.save_loss_curves(history.records, args.out / "loss_curves.png",
                          title=f"{arch['builder']}: {arch['loss']} per pixel")
    print(f"final test loss {history.last()['test_loss']:.4f} ({arch['loss']} per pixel)", flush=True)
done(args)
