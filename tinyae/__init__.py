"""tinyae: autoencoders in NumPy/CuPy with hand-written backward passes."""
import os as _os
import sys as _sys

# OpenBLAS's threads spin for 2^28 cycles (~0.1 s) after each matrix product before they sleep,
# and while they spin they hold the cores that tinyae's own threads (the direct convolution,
# tinyae.nn._conv_direct) need: on 2 cores the conv AE trained 35-45 % slower.  2^20 cycles
# (~0.4 ms) keeps them awake between the back-to-back products of a dense model (no change
# measured there) and lets them sleep during a convolution.  OpenBLAS reads this once, when
# NumPy loads it, so it only applies when tinyae is imported before NumPy; a value you set
# yourself is kept (docs/performance.md, "Both cores").
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "20")

from . import backend
from . import nn
from . import data
from . import models, train, checkpoint

__version__ = "0.1.0"
__all__ = ["backend", "nn", "data", "models", "train", "checkpoint", "__version__"]
