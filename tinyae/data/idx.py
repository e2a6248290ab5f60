"""The IDX file format (MNIST's): read and write, with every header field checked.

An IDX file is a header, two zero bytes, a type code and the number of dimensions D,
then D big-endian uint32 sizes, then the values, row-major, big-endian; optionally the
whole file gzip-compressed.  Nothing here knows about MNIST (that is :mod:`.sources`).
"""
from __future__ import annotations

import gzip
import hashlib
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from .. import _files


class DataError(ValueError):
    """A data file is missing, truncated, corrupt or not the expected one."""



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
            extra = _count_rest(f)
            if extra:
                raise DataError(f"{path}: header/payload mismatch: the header promises shape {shape} "
                                f"({nbytes} bytes of data) but {extra} more bytes follow")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip file ({exc})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not an IDX file: pass the file itself") from None
    array = np.frombuffer(payload, dtype=dtype).reshape(shape)
    array = array.astype(dtype.newbyteorder("="))        # a writable, native-endian copy
    if not with_md5:
        return array
    md5 = hashlib.md5(magic + dims, usedforsecurity=False)
    md5.update(payload)
    return array, md5.hexdigest()


def _count_rest(f, chunk=1 << 24) -> int:
    """How many bytes are left in ``f``, read chunk by chunk and not kept (a gzip file with
    gigabytes of padding after the data must not fill the memory just to be refused)."""
    total = 0
    while part := f.read(chunk):
        total += len(part)
    return total


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

