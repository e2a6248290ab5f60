"""Models: AutoEncoder (dense, convolutional, denoising, sparse), ContractiveAutoEncoder,
VAE, tied weights, and the tutorials' architectures by name (:func:`build`).

See docs/models.md for each model's objective and gradient.
"""
from ..nn.linear import TiedLinear  # a layer (tinyae.nn), listed here with the tied-weight models
from .autoencoder import AutoEncoder, ContractiveAutoEncoder, Model
from .builders import BUILDERS, available, build, register
from .vae import VAE

__all__ = ["Model", "AutoEncoder", "ContractiveAutoEncoder", "VAE", "TiedLinear",
           "BUILDERS", "build", "register", "available"]
from .keras import KerasAdam, KerasBCELoss, KerasVAE, vae_784_64_2_keras  # noqa: E402

register("vae-784-64-2-keras")(vae_784_64_2_keras)   # the Keras blog's VAE, by name (builders.py has the rest)

__all__ += ["KerasVAE", "KerasBCELoss", "KerasAdam"]
