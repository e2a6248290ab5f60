"""Writing files without losing or leaking any: one atomic-write helper for checkpoints,
figures, IDX files and downloads.

* A file is written to a temporary file beside its target, named ``.<target name>.<random>.tmp``,
  and renamed over the target (``os.replace``) only once complete: a crash leaves the old
  file or the new one, never half of one.
* The temporary file is created mode 0600 by :func:`tempfile.mkstemp`; before the rename it is
  given the mode any other new file of the user gets (``0666`` minus the umask).
* A process killed mid-write leaves its temporary file behind; :func:`remove_orphans` deletes
  such leftovers for one target (callers run it before the next write and say what they removed).
* Two processes writing beside each other (two runs on one folder) never delete each other's
  temporary files: the writer holds an exclusive ``flock`` on its temporary file for as long as
  it writes (the kernel drops it when the process ends, however it ends), and
  :func:`remove_orphans` deletes only a file whose lock it can take itself — one that no living
  process is writing.  Where the file system has no locks, only files older than
  :data:`UNLOCKED_AGE` seconds are taken as abandoned.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import tempfile
import threading
import time

import numpy

try:
    import fcntl
except ImportError:           # (not on Windows: there, orphans are judged by their age alone)
    fcntl = None

__all__ = ["user_file_mode", "temp_beside", "finish", "atomic_write", "remove_orphans"]

UNLOCKED_AGE = 3600.0    # seconds: a temporary file whose lock cannot be tested is abandoned after this


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
    """(fd, name) of a new temporary file in ``path``'s folder (created if missing), locked
    (``flock``) through ``fd``: keep ``fd`` open until the file is renamed or discarded, and
    :func:`remove_orphans` in another process leaves it alone."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    for _ in range(100):
        fd, name = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        try:
            _lock(fd, wait=True)
        except OSError:     # no locks here: remove_orphans goes by age (UNLOCKED_AGE)
            return fd, name
        if _same_file(fd, name):
            return fd, name
        os.close(fd)        # removed by another process in the instant before we locked it: again
    raise OSError(f"could not create a temporary file beside {path} that stays in place")


def _lock(fd, wait: bool) -> bool:
    """Take an exclusive flock on ``fd``; True if taken, False if another process holds it.
    Raises OSError where the file system has no locks (and without fcntl)."""
    if fcntl is None:
        raise OSError("no file locks on this system")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def _same_file(fd, name) -> bool:
    try:
        return os.stat(name).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


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
    try:      # the file stays open (and locked: see temp_beside) until it has its final name
        if binary is None:
            try:
                write(tmp)
                finish(tmp, path)
            finally:
                os.close(fd)
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


@contextlib.contextmanager
def _sigint_held():
    """Hold Ctrl-C while the block runs (main thread only: where Python runs its signal
    handlers).  A SIGINT that arrives meanwhile is recorded, and the handler that was in place
    is called with it right after the block — so a KeyboardInterrupt is raised after zipfile
    has finished, not from inside its clean-up."""
    if threading.current_thread() is not threading.main_thread():
        yield                   # (no KeyboardInterrupt is ever raised in another thread)
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, caught[0])
        elif caught and previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def savez(f, **arrays) -> None:
    """``numpy.savez`` into the open file ``f``, built in memory first and written in one call.

    A failed write (a full disk) then fails in ``f.write`` with nothing half-open: NumPy 1.x's
    savez leaves its zip writer to the garbage collector, which later tries to finish it on
    the already closed temporary file and prints a traceback.  A Ctrl-C while the zip is
    built is held until it is built (:func:`_sigint_held`), then raised as KeyboardInterrupt.
    """
    buffer = io.BytesIO()
    with _sigint_held():
        numpy.savez(buffer, **arrays)
    f.write(buffer.getbuffer())


def remove_orphans(path, older_than: float = 0.0) -> list[str]:
    """Delete the temporary files that an interrupted write of ``path`` left beside it.

    Only files named like :func:`temp_beside`'s (``.<name>.<8 random chars>.tmp``) that are
    provably abandoned: no process holds their lock (a write still running in another
    process, e.g. a second run on the same folder, keeps it; see :func:`temp_beside`), and,
    if ``older_than`` > 0, not modified for that many seconds.  Where locks cannot be tested,
    a file counts as abandoned only after :data:`UNLOCKED_AGE` seconds.  Symbolic links and
    other users' files are left alone.  Returns the names removed.
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
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:         # gone already, a link, or not ours to judge
            continue
        try:
            st = os.fstat(fd)
            if older_than > 0 and now - st.st_mtime < older_than:
                continue
            try:
                if not _lock(fd, wait=False):
                    continue        # a living process is writing it
            except OSError:
                if now - st.st_mtime < max(older_than, UNLOCKED_AGE):
                    continue
            if not _same_file(fd, full):
                continue
            os.unlink(full)
            removed.append(entry)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
