"""The figures of the "Intro to Autoencoders" tutorial (Keras), shared by ae_mnist.py and
conv_ae_mnist.py: what the tutorial shows after training its dense and conv AEs.

    code_histograms.png   a histogram of every code coordinate over the training codes (a grid)
    kernel_pca_2d.png     KernelPCA (RBF, scikit-learn) of 3,000 training codes, by digit, with a legend
    kernel_pca_3d.png     the same in 3-D
    generated.png         36 digits decoded from codes drawn from N(0, 0.33²) per coordinate
                          (the tutorial's way to make new digits from a tanh code in [−1, 1])
    progress.gif          the same 8 test digits over their reconstructions, one frame per epoch
"""
from __future__ import annotations

import numpy as np

from common import decoder_fn, run
from tinyae import plot

N_PCA = 3000        # training codes in the KernelPCA figures
CODE_STD = 0.33     # the spread of the codes the tutorial decodes into new digits
N_GENERATED = 36


class Progress:
    """A fit callback keeping each epoch's reconstructions of fixed digits for progress.gif."""

    def __init__(self, x_fixed, chunk=500):
        self.x, self.chunk, self.frames = x_fixed, chunk, {}

    def __call__(self, epoch, model, history):
        model.eval()
        self.frames[epoch] = run(model.forward, self.x, self.chunk)
        model.train()

    def save(self, path, image_shape, value_range=(0, 1)):
        if not self.frames:
            return None
        return plot.save_reconstruction_animation(self.x.reshape((-1,) + image_shape),
                                                  {e: r.reshape((-1,) + image_shape) for e, r in self.frames.items()},
                                                  path, fps=2, value_range=value_range)


def tutorial_figures(model, x_train, y_train, out, *, name, seed=0, generate=True, image_shape=(28, 28),
                     value_range=(0, 1), chunk=500):
    """Write code_histograms.png, kernel_pca_2d/3d.png and (``generate``) generated.png into ``out``."""
    model.eval()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_train), size=min(N_PCA, len(x_train)), replace=False)
    codes = run(model.encode, x_train[pick], chunk)
    plot.save_code_histograms(codes, out / "code_histograms.png", ncols=4,
                              title=f"{name}: each code coordinate over {len(pick):,} training digits")
    for k in (2, 3):
        plot.save_kernel_pca(codes, y_train[pick], out / f"kernel_pca_{k}d.png", n_components=k,
                             title=f"{name}: RBF KernelPCA of {len(pick):,} training codes")
    if generate:
        z = rng.normal(0.0, CODE_STD, size=(N_GENERATED, codes.shape[1])).astype(np.float32)
        images = decoder_fn(model)(z).reshape((-1,) + tuple(image_shape))
        plot.save_samples(images, out / "generated.png", nrow=6, value_range=value_range,
                          title=f"{name}: {N_GENERATED} codes z ~ N(0, {CODE_STD}²) decoded")
    return codes
