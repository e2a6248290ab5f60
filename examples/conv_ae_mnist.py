"""A convolutional autoencoder on MNIST (28×28 digits in [0, 1], shape (N, 1, 28, 28)).

The conv AE of "Intro to Autoencoders" (Keras), with the tutorial's settings:
encoder conv 4@5×5 → max-pool → conv 8@5×5 → max-pool → dense 150 → a 16-D tanh code;
decoder dense 120 → 320 → 7·7·16 → upsample + conv 8@5×5 → upsample + conv 4@6×6 →
conv 1@7×7 with a sigmoid output ("same" convolutions, ReLU); per-pixel MSE, Keras's
Glorot init and Adam (lr 1e-3, ε = 1e-7), batch 200, 50 epochs.  The tanh keeps the codes in
[−1, 1], where the tutorial draws new codes from N(0, 0.33²).  50 epochs take about half an
hour on one CPU core (--epochs 5 for a look, or --backend cupy).
``--earlier-variant``: this example's former model — a linear code, BCE on logits, PyTorch's
init and Adam, batch 128 (give --batch-size 128 too to match it).
``--decoder transposed|unpool|upsample``: the OpenGenus survey's fully convolutional variants
instead (tinyae.models.builders; 3×3 kernels, ReLU, an 8×7×7 code, sigmoid output, MSE,
PyTorch's init and Adam; give --batch-size and --epochs as you like):
  transposed  strided Conv2d down (stride 2) / ConvTranspose2d up (stride 2)
  unpool      Conv2d + MaxPool2d down / MaxUnpool2d with the pools' indices + Conv2d up
  upsample    strided Conv2d down / nearest Upsample + Conv2d up
These write reconstructions, filters, latent scatter (PCA of the flattened codes), progress.gif
and loss curves, not the tutorial's code figures (its codes are 16 numbers; these are feature
maps, and an unpooling decoder cannot decode a code without its encoder's indices).
examples/checkerboard.py compares transposed with upsample.

Figures in --out (default results/conv_ae_mnist/) — the tutorial's, and a few more:
  every epoch   reconstruction_N.png (8 test digits over their reconstructions)
  at the end    reconstructions.png (the digits, then their reconstructions after each epoch),
                progress.gif (the same, one frame per epoch),
                code_histograms.png (each code coordinate over 3,000 training codes),
                kernel_pca_2d.png, kernel_pca_3d.png (RBF KernelPCA of those codes, by digit),
                generated.png (36 decoded codes from N(0, 0.33²)),
                filters.png (the 4 learned 5×5 first-layer filters),
                latent_scatter.png (PCA of the test codes), loss_curves.png, checkpoint.npz

    python examples/conv_ae_mnist.py --epochs 3 --data embedded
    python examples/conv_ae_mnist.py --decoder transposed --epochs 3 --batch-size 64
"""
from common import (done, explicit, fit_options, load_images, make_parser, n_params, one_per_class, run,
                    run_cli, save_loss_curves, setup_backend)
import numpy as np

from keras_figures import Progress, tutorial_figures
from tinyae import models, plot
from tinyae.models.keras import KerasAdam
from tinyae.optim import Adam
from tinyae.train import fit

parser = make_parser("conv_ae_mnist", __doc__.splitlines()[0], epochs=50, batch_size=200, latent_dim=16)
parser.add_argument("--earlier-variant", action="store_true",
                    help="linear code, BCE on logits, PyTorch init and Adam (instead of the tutorial's "
                         "tanh code, MSE, Keras init and Adam)")
SURVEY = {"transposed": "conv-ae-transposed", "unpool": "conv-ae-unpool", "upsample": "conv-ae-upsample"}
parser.add_argument("--decoder", choices=["dense", *SURVEY], default="dense",
                    help="dense: the tutorial's model (dense bottleneck, upsample + conv); transposed, unpool, "
                         "upsample: the OpenGenus survey's fully convolutional variants (8×7×7 code)")


def main(args):
    survey = args.decoder != "dense"
    if survey and (args.earlier_variant or explicit("--latent-dim")):
        parser.error(f"--decoder {args.decoder} has a fixed 8×7×7 code and its own settings; leave out "
                     "--latent-dim and --earlier-variant")
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args)
    x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)   # NCHW

    if survey:
        model = models.build(SURVEY[args.decoder], seed=args.seed)
        optimizer, loss = Adam(model.parameters(), lr=args.lr), "MSE"
    elif args.earlier_variant:
        model = models.build("conv-ae", latent=args.latent_dim, code_activation=None, loss="bce",
                             seed=args.seed)
        optimizer, loss = Adam(model.parameters(), lr=args.lr), "BCE"
    else:
        model = models.build("conv-ae", latent=args.latent_dim, init="keras", seed=args.seed)
        optimizer, loss = KerasAdam(model.parameters(), lr=args.lr), "MSE"
    name = SURVEY[args.decoder] if survey else "conv-ae"
    code = "an 8×7×7" if survey else f"a {args.latent_dim}-D {'linear' if args.earlier_variant else 'tanh'}"
    print(f"model: {name} with {code} code, "
          f"{n_params(model)} parameters, {type(optimizer).__name__}; loss = {loss} averaged over pixels",
          flush=True)

    fixed = one_per_class(y_test, 8)
    CHUNK = 100          # images per forward pass outside training: im2col memory grows with it
    through_training = {}    # epoch → reconstructions of the fixed digits

    def figures(epoch, model, history):
        model.eval()
        recon = run(model.forward, x_test[fixed], CHUNK)
        through_training[epoch] = recon
        plot.save_reconstructions(x_test[fixed], recon, args.out / f"reconstruction_{epoch}.png",
                                  title=f"epoch {epoch}: test digits and reconstructions")

    progress = Progress(x_test[fixed], CHUNK)
    history = fit(model, optimizer, x_train, x_test, callbacks=[figures, progress], **fit_options(args))
    progress.save(args.out / "progress.gif", (28, 28))

    # The same 8 digits after (up to 10 of) this run's epochs, under the originals.
    if through_training:
        epochs = sorted(through_training)
        epochs = [epochs[i] for i in np.unique(np.linspace(0, len(epochs) - 1, 10).round().astype(int))]
        grid = np.concatenate([x_test[fixed]] + [through_training[e] for e in epochs])
        plot.save_image_grid(grid, args.out / "reconstructions.png", nrow=len(fixed),
                             title=f"top row: test digits; below: after epoch {', '.join(map(str, epochs))}")

    model.eval()
    first_conv = model.encoder[0].weight.data            # (4, 1, 5, 5); survey: (16, 1, 3, 3)
    k = first_conv.shape[-1]
    plot.save_filters(first_conv, args.out / "filters.png", nrow=min(len(first_conv), 8), scale=24 if k == 5 else 32,
                      title=f"first-layer {k}×{k} filters (red +, blue −)")
    codes = run(model.encode, x_test, CHUNK).reshape(len(x_test), -1)
    plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                             title=f"test digits' {codes.shape[1]}-D codes")
    if not survey:
        tutorial_figures(model, x_train, y_train, args.out, name="conv-ae", seed=args.seed, chunk=CHUNK)
    if len(history):
        save_loss_curves(history.records, args.out / "loss_curves.png", title=f"{name}: {loss} per pixel")
        print(f"final test loss {history.last()['test_loss']:.4f} ({loss} per pixel)", flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
