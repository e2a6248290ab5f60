"""Writing files without losing or leaking any: one atomic-write helper for checkpoints,
figures, IDX files and downloads.

* A file is written to a temporary file beside its target, named ``.<target name>.<random>.tmp``,
  and renamed over the target (``os.replace``) only once complete: a crash leaves the old
  file or the new one, never half of one.
* The temporary file is created mode 0600 by :func:`tempfile.mkstemp`; before the rename it is
  given the mode any other new file of the user gets (``0666`` minus the umask).
* A process killed mid-write leaves its temporary file behind; :func:`remove_orphans` deletes
  such leftovers for one target (callers run it before the next write and say what they removed).
"""
from __future__ import annotations

import io
import os
import re
import tempfile
import time

import numpy

__all__ = ["user_file_mode", "temp_beside", "finish", "atomic_write", "remove_orphans"]


def _umask() -> int:
    """The process umask (read from /proc where possible: ``os.umask`` can only be read by setting it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_file_mode() -> int:
    """The permission bits a new file of this user gets: 0666 minus the umask."""
    return 0o666 & ~_umask()


def temp_beside(path) -> tuple[int, str]:
    """(fd, name) of a new temporary file in ``path``'s folder (created if missing)."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)


def finish(tmp: str, path) -> None:
    """Give ``tmp`` the user's file mode and rename it over ``path``."""
    os.chmod(tmp, user_file_mode())
    os.replace(tmp, os.fspath(path))


def discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def atomic_write(path, write, binary: bool = True) -> str:
    """Call ``write(f)`` on an open temporary file beside ``path``, then move it over ``path``.

    ``write`` may also be given the temporary file's *name* instead: pass ``binary=None``
    and it is called as ``write(tmp_name)`` (for writers that open files themselves).
    Returns ``path`` as a str.  On any failure (or Ctrl-C) the temporary file is removed
    and the old ``path``, if any, is left as it was.
    """
    path = os.fspath(path)
    fd, tmp = temp_beside(path)
    try:
        if binary is None:
            os.close(fd)
            write(tmp)
        else:
            with os.fdopen(fd, "wb" if binary else "w") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        finish(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    return path


def savez(f, **arrays) -> None:
    """``numpy.savez`` into the open file ``f``, built in memory first and written in one call.

    A failed write (a full disk) then fails in ``f.write`` with nothing half-open: NumPy 1.x's
    savez leaves its zip writer to the garbage collector, which later tries to finish it on
    the already closed temporary file and prints a traceback.
    """
    buffer = io.BytesIO()
    numpy.savez(buffer, **arrays)
    f.write(buffer.getbuffer())


def remove_orphans(path, older_than: float = 0.0) -> list[str]:
    """Delete the temporary files that an interrupted write of ``path`` left beside it.

    Only files named like :func:`temp_beside`'s (``.<name>.<8 random chars>.tmp``) and, if
    ``older_than`` > 0, not modified for that many seconds (a download still in progress in
    another process keeps its file fresh).  Returns the names removed.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    pattern = re.compile(r"\." + re.escape(name) + r"\.[A-Za-z0-9_]{8}\.tmp\Z"      # ours, and the
                         r"|\.tmp-" + re.escape(name) + r"\.[A-Za-z0-9_]{8}\Z")   # old checkpoints' name
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.match(entry):
            continue
        full = os.path.join(folder, entry)
        try:
            if older_than > 0 and now - os.stat(full).st_mtime < older_than:
                continue
            os.unlink(full)
            removed.append(entry)
        except OSError:
            continue
    return removed
