"""tinyae: autoencoders in NumPy/CuPy with hand-written backward passes."""
from . import backend
from . import nn
from . import data
from . import models, train, checkpoint

__version__ = "0.1.0"
__all__ = ["backend", "nn", "data", "models", "train", "checkpoint", "__version__"]
