"""Models: AutoEncoder (dense, convolutional, denoising, sparse), ContractiveAutoEncoder,
VAE, tied weights, and the tutorials' architectures by name (:func:`build`).

See docs/models.md for each model's objective and gradient.
"""
from ..nn.linear import TiedLinear  # lives in tinyae.nn; re-exported here, where it used to be
from .autoencoder import AutoEncoder, ContractiveAutoEncoder, Model
from .builders import BUILDERS, available, build, register
from .vae import VAE

__all__ = ["Model", "AutoEncoder", "ContractiveAutoEncoder", "VAE", "TiedLinear",
           "BUILDERS", "build", "register", "available"]
from . import keras  # noqa: E402,F401  (registers vae-784-64-2-keras)
from .keras import KerasAdam, KerasBCELoss, KerasVAE  # noqa: E402

__all__ += ["KerasVAE", "KerasBCELoss", "KerasAdam"]
