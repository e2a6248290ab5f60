"""Minibatches: :class:`DataLoader` cuts (x, y) into shuffled batches and puts each on the
active backend with one copy."""
from __future__ import annotations

import numbers

import numpy as np

from .. import backend
from .._checks import same_length
from .transforms import _positive_int


def _describe(value) -> str:
    if hasattr(value, "shape"):
        return f"an array of shape {tuple(value.shape)}"
    return "None" if value is None else f"a {type(value).__name__}"


class DataLoader:
    """Minibatches ``(xb, yb)`` of ``x`` (and labels ``y``), reshuffled each epoch.

    Epoch ``e`` uses the order drawn from ``numpy.random.default_rng([seed, e])``,
    so a run resumed with ``set_epoch(e)`` sees the same batches.  Every batch is
    a copy, never a view: changing ``xb`` or ``yb`` in place (``xb += noise``, an in-place
    transform) leaves ``x`` and ``y`` as they were.  Each host batch goes through
    ``transform(xb, rng)`` if given (rng: a Generator seeded from (seed, e)), then,
    with ``to_device``, one ``backend.asarray`` call puts it on the active backend
    in the default dtype.  ``yb`` stays a NumPy int
    array (None without ``y``).
    """

    def __init__(self, x, y=None, batch_size=64, shuffle=True, seed=0, drop_last=False,
                 transform=None, to_device=True):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")) or not getattr(x, "ndim", 0):
            raise ValueError(f"DataLoader: x must be an array of samples (N, ...), got "
                             f"{type(x).__name__}{' of shape ()' if hasattr(x, 'shape') else ''}; "
                             "convert with numpy.asarray")
        same_length(x, y)
        batch_size = _positive_int("batch_size", batch_size, "DataLoader")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(f"DataLoader: seed must be a whole number >= 0, got {seed!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be a function transform(xb, rng), got "
                            f"{type(transform).__name__}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.transform, self.to_device = drop_last, transform, to_device
        self.epoch = 0          # the epoch the next iteration runs

    def __len__(self):
        n, b = len(self.x), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch):
        """Make the next pass over the data epoch ``epoch`` (its order and noise)."""
        self.epoch = int(epoch)

    def __iter__(self):
        epoch, n = self.epoch, len(self.x)
        self.epoch += 1
        order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else None
        rng = np.random.default_rng([self.seed, epoch, 1])      # the transforms' own stream
        for i in range(len(self)):
            start, stop = i * self.batch_size, min((i + 1) * self.batch_size, n)
            index = order[start:stop] if order is not None else slice(start, stop)
            xb = self.x[index]
            yb = None if self.y is None else np.asarray(backend.to_numpy(self.y[index]))   # y may be on a device
            if order is None:     # a slice is a view: a batch never aliases the data set
                xb = xb.copy()
                yb = None if yb is None else yb.copy()
            if self.transform is not None:
                n_batch = len(xb)
                xb = self.transform(xb, rng)
                if not (hasattr(xb, "shape") and getattr(xb, "ndim", 0) and len(xb) == n_batch):
                    raise ValueError(f"DataLoader: transform returned {_describe(xb)} for a batch of "
                                     f"{n_batch} samples; it must return the batch as an array with the "
                                     "same number of samples")
            if self.to_device:
                xb = backend.asarray(xb, dtype=backend.default_dtype())
            yield xb, yb
