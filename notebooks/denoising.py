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
# 784-32-784 model with Gaussian noise $\sigma = 0.5$, 5 epochs on 10,000 digits, beside the
# same model trained without noise.

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train")
test_images, _ = data.load_mnist("test")
x_train = data.flatten(data.to_float(train_images[:10000]))
x_test = data.flatten(data.to_float(test_images[:2000]))
rng = np.random.default_rng(0)
noisy_test = data.gaussian_noise(x_test, 0.5, rng, clip=None)   # x + 0.5 ε, as in training

# %%
dae = models.build("ae-784-32", corruption=["gaussian", 0.5], seed=0)
plain = models.build("ae-784-32", seed=0)
for name, model in [("denoising", dae), ("plain", plain)]:
    print(name)
    fit(model, Adam(model.parameters(), lr=1e-3), x_train, x_test, epochs=5, batch_size=256, seed=0,
        progress=False)

# %% [markdown]
# Both models get the same noisy test digits; the error is measured against the clean ones.

# %%
for name, model in [("denoising", dae), ("plain", plain)]:
    model.eval()
    err = float(np.mean((model(noisy_test) - x_test) ** 2))
    print(f"{name:9s}: MSE(reconstruction of the noisy digit, clean digit) = {err:.4f}")
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
