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
# loss of about 0.09. Here: 5 epochs on 10,000 digits.
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

train_images, _ = data.load_mnist("train")
test_images, test_labels = data.load_mnist("test")
x_train = data.flatten(data.to_float(train_images[:10000]))
x_test = data.flatten(data.to_float(test_images[:2000]))

model = models.build("ae-784-32", seed=0)
print(model)

# %% [markdown]
# `fit` runs the loop: for each batch `model.loss(x)`, `optimizer.zero_grad()`,
# `model.backward_loss()`, `optimizer.step()`.

# %%
optimizer = Adam(model.parameters(), lr=1e-3)
history = fit(model, optimizer, x_train, x_test, epochs=5, batch_size=256, seed=0, progress=False)

# %% [markdown]
# The code is 32 numbers per digit, a compression of 24.5×. What comes back:

# %%
model.eval()
shown = np.arange(10)
plot.save_reconstructions(x_test[shown].reshape(-1, 28, 28), model(x_test[shown]).reshape(-1, 28, 28),
                          "reconstructions.png", n=10, title="784 → 32 → 784 after 5 epochs")
display(Image("reconstructions.png"))
codes = model.encode(x_test)
print(f"code: {codes.shape[1]} units, {float(np.mean(codes == 0)):.0%} of them exactly 0 (ReLU) on the test digits")
