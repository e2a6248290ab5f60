"""A convolutional autoencoder on MNIST (28×28 digits in [0, 1], shape (N, 1, 28, 28)).

Encoder conv 4@5×5 → max-pool → conv 8@5×5 → max-pool → dense 150 → a 16-D code;
decoder dense 120 → 320 → 7·7·16 → upsample + conv 8@5×5 → upsample + conv 4@6×6 →
conv 1@7×7 with a sigmoid output ("same" convolutions, ReLU); per-pixel BCE, Adam 1e-3,
batch 128.  The Keras tutorial trains 50 epochs (test BCE about 0.06); the convolutions
run on the CPU here, so the default is 10 epochs — use --epochs 50, or --backend cupy.

Figures in --out (default results/conv_ae_mnist/):
  every epoch   reconstruction_N.png (8 test digits over their reconstructions)
  at the end    reconstructions.png (the digits, then their reconstructions after each epoch),
                filters.png (the 4 learned 5×5 first-layer filters),
                latent_scatter.png (PCA of the test codes), loss_curves.png, checkpoint.npz

    python examples/conv_ae_mnist.py --epochs 3 --data embedded
"""
from common import (done, fit_options, load_images, make_parser, n_params, one_per_class, run,
                    setup_backend)  # first: it sets the BLAS threads
import numpy as np

from tinyae import models, plot
from tinyae.optim import Adam
from tinyae.train import fit

parser = make_parser("conv_ae_mnist", __doc__.splitlines()[0], epochs=10, batch_size=128, latent_dim=16)
args = parser.parse_args()
setup_backend(args)

x_train, y_train, x_test, y_test = load_images(args)
x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)   # NCHW

model = models.build("conv-ae", latent=args.latent_dim, seed=args.seed)
optimizer = Adam(model.parameters(), lr=args.lr)
print(f"model: conv-ae with a {args.latent_dim}-D code, {n_params(model)} parameters; "
      "loss = BCE averaged over pixels", flush=True)

fixed = one_per_class(y_test, 8)
CHUNK = 100          # images per forward pass outside training: im2col memory grows with it
through_training = {}    # epoch → reconstructions of the fixed digits


def figures(epoch, model, history):
    model.eval()
    recon = run(model.forward, x_test[fixed], CHUNK)
    through_training[epoch] = recon
    plot.save_reconstructions(x_test[fixed], recon, args.out / f"reconstruction_{epoch}.png",
                              title=f"epoch {epoch}: test digits and reconstructions")


history = fit(model, optimizer, x_train, x_test, callbacks=[figures], **fit_options(args))

# The same 8 digits after (up to 10 of) this run's epochs, under the originals.
if through_training:
    epochs = sorted(through_training)
    epochs = [epochs[i] for i in np.unique(np.linspace(0, len(epochs) - 1, 10).round().astype(int))]
    grid = np.concatenate([x_test[fixed]] + [through_training[e] for e in epochs])
    plot.save_image_grid(grid, args.out / "reconstructions.png", nrow=len(fixed),
                         title=f"top row: test digits; below: after epoch {', '.join(map(str, epochs))}")

model.eval()
first_conv = model.encoder[0].weight.data            # (4, 1, 5, 5)
plot.save_filters(first_conv, args.out / "filters.png", nrow=len(first_conv), scale=24,
                  title="first-layer 5×5 filters (red +, blue −)")
codes = run(model.encode, x_test, CHUNK)
plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                         title=f"test digits' {args.latent_dim}-D codes")
if len(history):
    plot.save_loss_curves(history.records, args.out / "loss_curves.png", title="conv AE: BCE per pixel")
    print(f"final test loss {history.last()['test_loss']:.4f} (BCE per pixel)", flush=True)
done(args)
