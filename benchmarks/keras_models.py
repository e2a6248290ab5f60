"""The Keras tutorials' models, written as the tutorials write them, for benchmarks/reproduce.py.

Keras 3 on the PyTorch backend (``KERAS_BACKEND=torch``, set before Keras is imported).
``twin(name, ours)`` builds the Keras model of a setup with the tutorial's layers, compiles
it as the tutorial does (``optimizer="adam"`` — Keras's Adam, ε = 1e-7 — and
``loss="binary_crossentropy"`` (clipped to [1e-7, 1 − 1e-7]) or ``"mse"``), and loads a float32
copy of the tinyae model ``ours``'s initial weights, so both start from the same point:

* Dense kernel (in, out) = Linear weight (out, in) transposed;
* Conv2D kernel (kh, kw, in, out) = Conv2d weight (out, in, kh, kw) transposed (2, 3, 1, 0);
* Keras is channels-last: its Flatten reads (h, w, c) where tinyae's reads (c, h, w), and its
  Reshape((7, 7, 16)) writes (h, w, c) where tinyae's Reshape(16, 7, 7) writes (c, h, w); the
  Dense after the Flatten and the Dense before the Reshape get their rows/columns permuted,
  so that the two networks are the same function.

``to_keras(x)`` turns a tinyae batch into the Keras layout ((N, 1, 28, 28) → (N, 28, 28, 1)).
"""
from __future__ import annotations

import os

import numpy

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
from keras import layers  # noqa: E402

from tinyae import nn as tnn  # noqa: E402
from tinyae.nn.conv import Conv2d  # noqa: E402

__all__ = ["twin", "to_keras", "KERAS_MODELS"]


def ae_784_32():
    """The Keras blog's simplest autoencoder: Dense(32, relu) → Dense(784, sigmoid), BCE."""
    inp = keras.Input(shape=(784,))
    encoded = layers.Dense(32, activation="relu")(inp)
    decoded = layers.Dense(784, activation="sigmoid")(encoded)
    model = keras.Model(inp, decoded)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model, [None, None]


def ae_784_250_16():
    """"Intro to Autoencoders", dense: 784-250 relu -16 tanh | 16-320 relu -784 sigmoid, MSE."""
    inp = keras.Input(shape=(784,))
    h = layers.Dense(250, activation="relu")(inp)
    code = layers.Dense(16, activation="tanh")(h)
    h = layers.Dense(320, activation="relu")(code)
    out = layers.Dense(784, activation="sigmoid")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    return model, [None] * 4


def conv_ae():
    """"Intro to Autoencoders", convolutional, on (28, 28, 1) channels-last; MSE."""
    inp = keras.Input(shape=(28, 28, 1))
    h = layers.Conv2D(4, (5, 5), activation="relu", padding="same")(inp)
    h = layers.MaxPooling2D((2, 2))(h)
    h = layers.Conv2D(8, (5, 5), activation="relu", padding="same")(h)
    h = layers.MaxPooling2D((2, 2))(h)
    h = layers.Flatten()(h)
    h = layers.Dense(150, activation="relu")(h)
    code = layers.Dense(16, activation="tanh")(h)
    h = layers.Dense(120, activation="relu")(code)
    h = layers.Dense(320, activation="relu")(h)
    h = layers.Dense(7 * 7 * 16, activation="relu")(h)
    h = layers.Reshape((7, 7, 16))(h)
    h = layers.UpSampling2D((2, 2))(h)
    h = layers.Conv2D(8, (5, 5), activation="relu", padding="same")(h)
    h = layers.UpSampling2D((2, 2))(h)
    h = layers.Conv2D(4, (6, 6), activation="relu", padding="same")(h)
    out = layers.Conv2D(1, (7, 7), activation="sigmoid", padding="same")(h)
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")
    # weighted layers in order: conv, conv, dense(392→150, after Flatten), dense, dense, dense,
    # dense(320→784, before Reshape), conv, conv, conv
    return model, [None, None, ("in", (8, 7, 7)), None, None, None, ("out", (16, 7, 7)), None, None, None]


KERAS_MODELS = {"keras-ae-784-32": ae_784_32, "keras-ae-784-250-16": ae_784_250_16, "keras-conv-ae": conv_ae}


def _weighted(ours):
    return [m for m in ours.modules() if isinstance(m, (tnn.Linear, Conv2d))]


def keras_weights(layer, perm):
    """[kernel, bias] in Keras's layout for one tinyae Linear/Conv2d (float32)."""
    w = numpy.asarray(layer.weight.data, dtype=numpy.float32)
    b = numpy.asarray(layer.bias.data, dtype=numpy.float32)
    if isinstance(layer, Conv2d):
        return [w.transpose(2, 3, 1, 0), b]                            # (kh, kw, in, out)
    if perm is None:
        return [w.T, b]                                                 # (in, out)
    side, (c, h, ww) = perm
    if side == "in":     # tinyae's input index is (c, h, w); Keras's Flatten gives (h, w, c)
        return [w.reshape(-1, c, h, ww).transpose(2, 3, 1, 0).reshape(h * ww * c, -1), b]
    # "out": tinyae's output index is (c, h, w); Keras's Reshape reads (h, w, c)
    k = w.reshape(c, h, ww, -1).transpose(3, 1, 2, 0).reshape(w.shape[1], h * ww * c)
    return [k, b.reshape(c, h, ww).transpose(1, 2, 0).reshape(-1)]


def twin(name, ours):
    """The compiled Keras model of setup ``name`` with a float32 copy of ``ours``'s weights."""
    model, perms = KERAS_MODELS[name]()
    kl = [lay for lay in model.layers if lay.weights]
    tl = _weighted(ours)
    if len(kl) != len(tl) or len(perms) != len(tl):
        raise ValueError(f"{name}: the Keras model has {len(kl)} weighted layers, tinyae's {len(tl)}")
    for k, t, perm in zip(kl, tl, perms):
        new = keras_weights(t, perm)
        shapes = [tuple(v.shape) for v in k.get_weights()]
        if shapes != [a.shape for a in new]:
            raise ValueError(f"{name}: Keras layer {k.name} has weights {shapes}, tinyae's {t!r} gives "
                             f"{[a.shape for a in new]}")
        k.set_weights(new)
    return model


def to_keras(x):
    """A tinyae batch in Keras's layout: NCHW → NHWC (flat batches unchanged)."""
    return numpy.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x
