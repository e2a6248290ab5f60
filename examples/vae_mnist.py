"""A variational autoencoder on MNIST — the main job.

Default (``--arch tutorial``): the first tutorial's VAE on 14×14 digits scaled to [-1, 1]:
196-64-16 trunk, heads 16→3 for μ and log σ², decoder 3-16-64-196, LeakyReLU(0.2), Tanh
output, loss MSE (summed over pixels) + KL, Adam 1e-3, batch 64, 20 epochs.
``--arch pytorch-example``: PyTorch examples/vae's 784-400-20 VAE with BCE(sum) + KL on
28×28 digits in [0, 1], batch 128, 10 epochs (test loss ≈ 105.6 per sample after 10).

Losses are printed summed per sample (batch sum / batch size), with the reconstruction
and the KL shown separately.  Figures in --out (default results/vae_mnist/):
  every epoch   reconstruction_N.png (8 test digits over their reconstructions),
                sample_N.png (64 decoded draws from N(0, I), the same draws every epoch)
  at the end    latent_scatter.png (test codes μ by label), manifold.png (k = 2),
                interpolation.png, loss_curves.png, and checkpoint.npz

    python examples/vae_mnist.py                       # ~minutes on 2 CPU cores
    python examples/vae_mnist.py --arch pytorch-example --latent-dim 2
    python examples/vae_mnist.py --backend cupy --epochs 40 --resume
"""
from common import (arch_defaults, decoder_fn, done, fit_options, load_images, make_parser, n_params,
                    one_per_class, run, setup_backend)  # first: it sets the BLAS threads
import numpy as np

from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

ARCHS = {   # builder, image side, pixel range, and the flags' defaults for each architecture
    "tutorial": dict(builder="vae-196-64-16", size=14, range="symmetric",
                     epochs=20, batch_size=64, latent_dim=3),
    "pytorch-example": dict(builder="vae-784-400-20", size=28, range="unit",
                            epochs=10, batch_size=128, latent_dim=20),
}

parser = make_parser("vae_mnist", __doc__.splitlines()[0], epochs=None, batch_size=None, latent_dim=True)
parser.add_argument("--arch", choices=list(ARCHS), default="tutorial",
                    help="; ".join(f"{k}: {v['builder']}, {v['epochs']} epochs, batch {v['batch_size']}, "
                                   f"latent dim {v['latent_dim']}" for k, v in ARCHS.items()))
parser.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (β-VAE)")
args = parser.parse_args()
arch = arch_defaults(args, ARCHS)
setup_backend(args)

x_train, y_train, x_test, y_test = load_images(args, size=arch["size"], value_range=arch["range"])
side = arch["size"]
shown = dict(value_range=(-1, 1) if arch["range"] == "symmetric" else (0, 1))
scale = 4 if side == 14 else 2          # magnify the small digits on screen

model = models.build(arch["builder"], latent=args.latent_dim, beta=args.beta, seed=args.seed)
optimizer = Adam(model.parameters(), lr=args.lr)
print(f"model: {arch['builder']} with a {args.latent_dim}-D latent space, "
      f"{n_params(model)} parameters; loss per sample = "
      f"{'MSE' if arch['range'] == 'symmetric' else 'BCE'} summed over pixels (recon) + "
      f"{'' if args.beta == 1 else f'{args.beta} x '}KL", flush=True)

fixed = one_per_class(y_test, 8)                         # 8 test digits, one per class
prior = np.random.default_rng(args.seed).standard_normal((64, args.latent_dim)).astype(np.float32)


def figures(epoch, model, history):
    """Each epoch: 8 test digits over their reconstructions (z = μ) and 64 prior draws."""
    model.eval()
    recon = run(model.reconstruct, x_test[fixed])
    plot.save_reconstructions(x_test[fixed].reshape(-1, side, side), recon.reshape(-1, side, side),
                              args.out / f"reconstruction_{epoch}.png", scale=scale,
                              title=f"epoch {epoch}: test digits and reconstructions", **shown)
    plot.save_samples(run(model.decode, prior).reshape(-1, side, side), args.out / f"sample_{epoch}.png",
                      scale=scale, title=f"epoch {epoch}: decoded z ~ N(0, I)", **shown)


history = fit(model, optimizer, x_train, x_test, callbacks=[figures], **fit_options(args))

# The latent space of the test set (the means μ), the decoder along a line, the curves.
model.eval()
codes = run(lambda x: model.encode(x, mode="deterministic"), x_test)
if args.latent_dim >= 2:
    plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                             title=f"test digits in the {args.latent_dim}-D latent space (μ)")
if args.latent_dim == 2:
    plot.save_manifold(decoder_fn(model), args.out / "manifold.png", n=15, image_shape=(side, side),
                       title="decoded grid of z at N(0, 1) quantiles", **shown)
a, b = fixed[0], fixed[1 % len(fixed)]
plot.save_interpolation(decoder_fn(model), codes[a], codes[b], args.out / "interpolation.png",
                        steps=10, image_shape=(side, side), scale=scale, **shown,
                        title=f"from a test {y_test[a]} to a test {y_test[b]} in latent space")
if len(history):
    plot.save_loss_curves(history.records, args.out / "loss_curves.png",
                          title="VAE loss per sample (recon + KL)")
    last = history.last()
    print(f"final test loss per sample {last['test_loss']:.2f} "
          f"(recon {last['test_recon']:.2f}, KL {last['test_kl']:.2f})", flush=True)
done(args)
