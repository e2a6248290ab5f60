"""tinyae: autoencoders in NumPy/CuPy with hand-written backward passes."""
from . import backend
from . import nn

__version__ = "0.1.0"
__all__ = ["backend", "nn", "__version__"]
