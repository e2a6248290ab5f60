"""Layers.  Every layer: ``y = layer(x)``; ``dx = layer.backward(dy)`` (accumulating parameter grads;
``layer.backward(dy, need_dx=False)`` skips dx and returns None, for a layer whose input is data).

Convolution and pooling come in three levels, read in this order: ``tinyae.nn.reference``
(plain loops, the definition), ``tinyae.nn.im2col`` (the same as matrix products,
``y = W · im2col(x)``), and the private ``tinyae.nn._conv_engine`` that the layers run.
"""
from .module import Module, Parameter, Sequential
from .linear import Linear, TiedLinear
from .activation import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .shape import Flatten, Reshape
from .dropout import Dropout, GaussianNoise
from .conv import Conv2d, ConvTranspose2d, set_conv_impl
from .pooling import AvgPool2d, MaxPool2d, MaxUnpool2d, Upsample
