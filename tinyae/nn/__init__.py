"""Layers.  Every layer: ``y = layer(x)``; ``dx = layer.backward(dy)`` (accumulating parameter grads)."""
from .module import Module, Parameter, Sequential
from .linear import Linear
from .activation import Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from .shape import Flatten, Reshape
from .dropout import Dropout, GaussianNoise
from .conv import Conv2d, ConvTranspose2d
from .pooling import AvgPool2d, MaxPool2d, MaxUnpool2d, Upsample
