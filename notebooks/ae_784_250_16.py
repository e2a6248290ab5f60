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
# # The 784-250-16 dense autoencoder
#
# A deeper dense autoencoder: 784→250→16 with tanh in the encoder, 16→320→784 with a sigmoid
# output, trained with the mean squared error and Adam, batch 200. The published curve goes
# from an MSE of about 0.07 to about 0.01 in 50 epochs. Here: 4 epochs on 20,000 digits.
The first epochs sit near 0.065, the error of drawing the *mean digit* every time; the
model leaves that plateau slowly, which is what the start of the published curve shows too.
#
# Every backward step in this model is one of three rules from
# [Backpropagation, layer by layer](../backprop.md):
#
# $$
# \text{Linear: } dx = dy\,W,\quad dW = dy^{\top} x,\quad db = \textstyle\sum_n dy_n; \qquad
# \text{Tanh: } dx = dy \odot (1 - y^2); \qquad
# \text{Sigmoid: } dx = dy \odot y\,(1 - y).
# $$
#
# The code: [`Linear`](../api/nn.md#tinyae.nn.Linear), [`Tanh`](../api/nn.md#tinyae.nn.Tanh),
# [`Sigmoid`](../api/nn.md#tinyae.nn.Sigmoid), [`MSELoss`](../api/losses.md#tinyae.losses.MSELoss).

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train")
test_images, _ = data.load_mnist("test")
x_train = data.flatten(data.to_float(train_images[:20000]))
x_test = data.flatten(data.to_float(test_images[:2000]))

model = models.build("ae-784-250-16", seed=0)
optimizer = Adam(model.parameters(), lr=1e-3)
print(model)

# %% [markdown]
# The backward chain of one batch, written out — what `model.backward_loss()` does for an
# autoencoder (`tinyae.models.AutoEncoder.backward_loss`):

# %%
x = x_train[:200]
total, parts = model.loss(x)
optimizer.zero_grad()
dxhat = model.recon_loss.backward()          # dL/dx̂, (200, 784)
dh = model.decoder.backward(dxhat)           # through Sigmoid, Linear, Tanh, Linear: (200, 16)
model.encoder.backward(dh)                   # the first layer's dx is skipped: its input is data
grad_norms = {name: float(np.linalg.norm(p.grad)) for name, p in model.named_parameters()}
optimizer.step()
print(f"MSE before the step {float(total):.4f}; gradient norms:")
for name, g in grad_norms.items():
    print(f"  {name:18s} {g:.3e}")

# %%
history = fit(model, optimizer, x_train, x_test, epochs=4, batch_size=200, seed=0, progress=False)
plot.save_loss_curves(history.records, "loss_curves.png", title="MSE per pixel")
display(Image("loss_curves.png"))

# %%
model.eval()
plot.save_reconstructions(x_test[:10].reshape(-1, 28, 28), model(x_test[:10]).reshape(-1, 28, 28),
                          "reconstructions.png", n=10, title="784-250-16 | 16-320-784")
display(Image("reconstructions.png"))
