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
# The Keras-style convolutional autoencoder on $(N, 1, 28, 28)$ digits: two blocks of
# convolution (5×5, "same" padding) + ReLU + 2×2 max pooling down to $8 \times 7 \times 7$, dense
# layers to a 16-number code and back, then nearest-neighbour upsampling and convolutions up
# to one channel of logits, trained with the per-pixel BCE. The published run reaches a
# validation BCE of about 0.062 after 50 epochs; here we train 2 epochs on 2,000 digits.
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

train_images, _ = data.load_mnist("train")
test_images, _ = data.load_mnist("test")
x_train = data.to_float(train_images[:2000])[:, None]     # (2000, 1, 28, 28)
x_test = data.to_float(test_images[:500])[:, None]

model = models.build("conv-ae", latent=16, seed=0)
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
history = fit(model, optimizer, x_train, x_test, epochs=2, batch_size=128, seed=0, progress=False)

# %%
model.eval()
plot.save_reconstructions(x_test[:10], model(x_test[:10]), "reconstructions.png", n=10,
                          title="convolutional AE after 2 epochs on 2,000 digits")
display(Image("reconstructions.png"))
plot.save_filters(model.encoder[0].weight.data, "filters.png", title="first-layer 5×5 filters")
display(Image("filters.png"))
