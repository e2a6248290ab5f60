"""Dense autoencoders on MNIST, three classic set-ups (``--arch``).

tutorial     the first tutorial's AE on 14×14 digits in [-1, 1]: 196-64-16-3 / 3-16-64-196,
             LeakyReLU(0.2), Tanh output, MSE; Adam 1e-3, batch 64, 20 epochs.
784-32       the Keras blog's AE ("Building Autoencoders in Keras", the first model): 784-32 ReLU /
             32-784 sigmoid, Keras's clipped BCE per pixel, Glorot init, Keras's Adam, batch 256,
             50 epochs (train/test loss about 0.09; its figure: digits over reconstructions).
784-250-16   "Intro to Autoencoders" (Keras), the dense AE: 784-250 ReLU -16 tanh / 16-320 ReLU
             -784 sigmoid, MSE, Glorot init, Keras's Adam, batch 200, 50 epochs (MSE from about
             0.07 to about 0.01); its figures: reconstructions, the code histograms, KernelPCA
             of the codes in 2-D and 3-D, new digits from codes drawn from N(0, 0.33²).
survey-784-32  the OpenGenus survey's linear AE: 784-32 ReLU / 32-784 sigmoid with per-pixel
             MSE (not BCE), PyTorch's init and Adam 1e-3, batch 20, the survey's 20 epochs (it
             gives no number to match; its loader does not shuffle, this one does).
``--augment`` trains as the chapter of ``--arch tutorial`` does (torchvision's
RandomHorizontalFlip(0.5) + RandomRotation(10)): each training batch, as it is drawn, rotated by
U(−10°, 10°) about the centre and mirrored left-right with probability ½, per image
(``tinyae.data.random_rotate_flip`` through ``DataLoader(transform=)``: on the host, so the same
on NumPy and CuPy, seeded by (--seed, epoch)); bilinear with the background value outside
(torchvision's default is nearest-pixel); the test digits are left as they are.  It works with
every --arch; pass it again with --resume; not with --distributed.
The two Keras set-ups use Keras's conventions (tinyae.models.keras); ``--init pytorch`` and
``--tanh-hidden`` (784-250-16's earlier all-tanh variant) are the documented departures.

Losses are averages over pixels (and samples).  Figures in --out (default results/ae_mnist/):
  every epoch   reconstruction_N.png (8 test digits over their reconstructions)
  at the end    latent_scatter.png (test codes by label; PCA of them for k > 3),
                code_histogram.png (the code coordinates of the test set, pooled),
                code_histograms.png (one histogram per coordinate, 3,000 training codes),
                kernel_pca_2d.png, kernel_pca_3d.png (RBF KernelPCA of those codes, by digit),
                generated.png (784-250-16 only: 36 decoded codes from N(0, 0.33²)),
                progress.gif (the reconstructions epoch by epoch),
                loss_curves.png, and checkpoint.npz

    python examples/ae_mnist.py --arch 784-250-16 --epochs 10
    python examples/ae_mnist.py --augment --out results/ae_mnist_augment     # the chapter's training
"""
from common import (AUGMENT_HELP, AUGMENT_NOTE, arch_defaults, done, flip_rotate, fit_options, load_images,
                    make_parser, n_params, one_per_class, run, run_cli, save_loss_curves, setup_backend)

from keras_figures import Progress, tutorial_figures
from tinyae import models, plot
from tinyae.data import DataLoader
from tinyae.models.keras import KerasAdam
from tinyae.optim import Adam
from tinyae.train import fit

ARCHS = {
    "tutorial": dict(builder="dense-196-64-16", size=14, range="symmetric", loss="MSE",
                     epochs=20, batch_size=64, latent_dim=3),
    "784-32": dict(builder="ae-784-32", size=28, range="unit", loss="BCE",
                   epochs=50, batch_size=256, latent_dim=32, keras={"loss": "keras-bce"}),
    "survey-784-32": dict(builder="ae-784-32", size=28, range="unit", loss="MSE",
                          epochs=20, batch_size=20, latent_dim=32, options={"loss": "mse"}),
    "784-250-16": dict(builder="ae-784-250-16", size=28, range="unit", loss="MSE",
                       epochs=50, batch_size=200, latent_dim=16, keras={}),
}

parser = make_parser("ae_mnist", __doc__.splitlines()[0], epochs=None, batch_size=None, latent_dim=True)
parser.add_argument("--arch", choices=list(ARCHS), default="tutorial",
                    help="; ".join(f"{k}: {v['builder']}, {v['epochs']} epochs, batch {v['batch_size']}, "
                                   f"code size {v['latent_dim']}" for k, v in ARCHS.items()))
parser.add_argument("--init", choices=["keras", "pytorch"], default=None,
                    help="weights: Keras's Glorot-uniform with zero biases (default for the Keras set-ups "
                         "784-32 and 784-250-16) or PyTorch's U(±1/√fan_in) (default for tutorial and "
                         "survey-784-32)")
parser.add_argument("--tanh-hidden", action="store_true",
                    help="784-250-16: tanh hidden layers (the earlier variant) instead of the tutorial's ReLU")
parser.add_argument("--augment", action="store_true",
                    help=AUGMENT_HELP)



def main(args):
    arch = arch_defaults(args, ARCHS)
    if args.arch == "784-250-16" and args.latent_dim != 16:
        parser.error("--arch 784-250-16 has a fixed 16-D code; leave --latent-dim out")
    setup_backend(args)

    x_train, y_train, x_test, y_test = load_images(args, size=arch["size"], value_range=arch["range"])
    side = arch["size"]
    shown = dict(value_range=(-1, 1) if arch["range"] == "symmetric" else (0, 1))
    scale = 4 if side == 14 else 2

    latent = {} if args.arch == "784-250-16" else {"latent": args.latent_dim}
    keras = arch.get("keras")                      # the Keras tutorials' conventions, or None
    init = args.init or ("keras" if keras is not None else "pytorch")
    if args.tanh_hidden and args.arch != "784-250-16":
        parser.error("--tanh-hidden is an option of --arch 784-250-16")
    options = {**(keras or {}), **arch.get("options", {}), **({"activation": "tanh"} if args.tanh_hidden else {})}
    model = models.build(arch["builder"], seed=args.seed, init=init, **latent, **options)
    optimizer = (KerasAdam if keras is not None else Adam)(model.parameters(), lr=args.lr)
    print(f"model: {arch['builder']} with a {args.latent_dim}-D code, {n_params(model)} parameters, "
          f"{init} init, {type(optimizer).__name__}; loss = {arch['loss']} averaged over pixels", flush=True)

    fixed = one_per_class(y_test, 8)

    def figures(epoch, model, history):
        model.eval()
        recon = run(model.forward, x_test[fixed])
        plot.save_reconstructions(x_test[fixed].reshape(-1, side, side), recon.reshape(-1, side, side),
                                  args.out / f"reconstruction_{epoch}.png", scale=scale,
                                  title=f"epoch {epoch}: test digits and reconstructions", **shown)

    progress = Progress(x_test[fixed])
    train = x_train
    if args.augment:   # the same shuffles as fit's own loader, each batch flipped/rotated as drawn
        if getattr(args, "world", None):
            parser.error("--augment is not available with --distributed here (fit shards plain arrays); "
                         "examples/vae_mnist.py --augment --distributed is")
        train = DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed,
                           transform=flip_rotate(side, fill=-1.0 if arch["range"] == "symmetric" else 0.0))
        print(AUGMENT_NOTE, flush=True)
    history = fit(model, optimizer, train, x_test, callbacks=[figures, progress], **fit_options(args))

    model.eval()
    codes = run(model.encode, x_test)
    if args.latent_dim >= 2:
        plot.save_latent_scatter(codes, y_test, args.out / "latent_scatter.png",
                                 title=f"test digits' {args.latent_dim}-D codes")
    plot.save_histograms({f"all {codes.shape[1]} coordinates": codes}, args.out / "code_histogram.png",
                         bins=60, xlabel="code value", ylabel="count (test digits × coordinates)",
                         title=f"code coordinates on the test set (mean {codes.mean():.2f}, "
                               f"std {codes.std():.2f})")
    tutorial_figures(model, x_train, y_train, args.out, name=arch["builder"], seed=args.seed,
                     generate=args.arch == "784-250-16", image_shape=(side, side), **shown)
    progress.save(args.out / "progress.gif", (side, side), **shown)
    if len(history):
        save_loss_curves(history.records, args.out / "loss_curves.png",
                         title=f"{arch['builder']}: {arch['loss']} per pixel")
        print(f"final test loss {history.last()['test_loss']:.4f} ({arch['loss']} per pixel)", flush=True)
    done(args)


if __name__ == "__main__":
    run_cli(main, parser)
