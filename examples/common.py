"""What every example shares: the command-line flags, the backend set-up, the data, and
the way a user's mistake is reported.

Each example script reads top to bottom on its own and borrows these helpers so that the
flags mean the same thing everywhere.

A script's body is a function ``body(args)`` run by :func:`run_cli`, which turns a user's
mistake — a bad flag value, an ``--out`` that cannot be written, a corrupt data file, a
checkpoint for another model, a full disk — into one line ``error: …`` on stderr and exit
status 2, and Ctrl-C into one line saying which epoch the checkpoint holds (exit 130).
Flag values are checked by argparse type functions, before anything is loaded.
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import signal
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing, too

import tinyae  # noqa: E402,F401  (before NumPy: it sets OpenBLAS's spin time, see tinyae/__init__.py)
import numpy as np  # noqa: E402

from tinyae import backend, data, distributed  # noqa: E402
from tinyae import plot  # noqa: E402
from tinyae.checkpoint import CheckpointError, inspect_checkpoint  # noqa: E402
from tinyae.train import TrainingError, TrainingInterrupted  # noqa: E402

# One CPU thread unless you say otherwise (--threads, or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS /
# MKL_NUM_THREADS): these models multiply small matrices, where a second thread costs more in
# hand-offs than it saves, and far more when the cores are busy (measured on 2 shared cores, one
# thread vs two: the VAE's epoch on the 4,000 embedded digits 0.1 s vs 0.6-13 s, the conv AE's
# 6 s vs 34 s).  setup_backend sets it with an explicit call, so the order of imports does not
# matter (see tinyae.backend.set_num_threads for why that works after NumPy is loaded).
THREADS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class UsageError(Exception):
    """A user's mistake found by a script; :func:`run_cli` prints it as ``error: <message>``, exit 2."""


# -- flag types: argparse prints "error: argument --x: <message>" for these -----------------------
def _number(text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _flag_type(name, kind, ok, wants, doc):
    """An argparse type: a number of ``kind`` for which ``ok(value)`` holds."""
    def parse(text):
        value = _number(text, kind)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wants}, got {value if kind is int else text}")
        return value
    parse.__name__, parse.__doc__ = name, doc
    return parse


positive_int = _flag_type("positive_int", int, lambda v: v >= 1, "a whole number >= 1", "A whole number >= 1.")
nonneg_int = _flag_type("nonneg_int", int, lambda v: v >= 0, "a whole number >= 0",
                        "A whole number >= 0 (seeds).")
positive_float = _flag_type("positive_float", float, lambda v: v > 0, "a number > 0",
                            "A finite number > 0 (learning rates).")
nonneg_float = _flag_type("nonneg_float", float, lambda v: v >= 0, "a number >= 0",
                          "A finite number >= 0 (weights of penalties, noise levels).")
open_unit = _flag_type("open_unit", float, lambda v: 0 < v < 1, "a number strictly between 0 and 1",
                       "A number strictly between 0 and 1 (a target activity ρ).")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: …``, exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def make_parser(name: str, description: str, *, epochs: int | None, batch_size: int | None,
                lr: float = 1e-3, latent_dim: int | None | bool = None) -> argparse.ArgumentParser:
    """The flags every example takes (defaults are the tutorial's settings).

    ``epochs``/``batch_size`` None, or ``latent_dim=True``: the default depends on ``--arch``
    and is filled in by :func:`arch_defaults`.
    """
    p = _Parser(prog=f"{name}.py", description=description, allow_abbrev=False)
    per_arch = "default: depends on --arch"
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="numpy (CPU) or cupy (NVIDIA GPU; pip install 'tinyae[cuda12]')")
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help=(per_arch if epochs is None else "default: %(default)s")
                   + "; the total, counting the epochs a --resume'd checkpoint holds")
    p.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=per_arch if batch_size is None else "default: %(default)s")
    p.add_argument("--lr", type=positive_float, default=lr,
                   help="Adam learning rate (default: %(default)s; with --resume: the checkpoint's)")
    if latent_dim is not None and latent_dim is not False:
        default = None if latent_dim is True else latent_dim
        p.add_argument("--latent-dim", type=positive_int, default=default,
                       help=per_arch if default is None else "default: %(default)s")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="default: 0; with --resume: the checkpoint's (a different one is refused)")
    p.add_argument("--data", choices=["auto", "full", "embedded"], default="auto",
                   help="full MNIST, the 5,000 embedded digits, or auto: full if available")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use only the first N train and N//5 test images (quick runs)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("results") / name,
                   help=f"where figures and the checkpoint go (default: results/{name}/)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --out (flags left out take the checkpoint's "
                        "values; a changed --lr or --batch-size applies from the next epoch, logged)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for BLAS and the optimizer (default: $OPENBLAS_NUM_THREADS, "
                        "$OMP_NUM_THREADS or $MKL_NUM_THREADS if set, else 1)")
    p.add_argument("--distributed", action="store_true",
                   help="train as one of N MPI processes (mpiexec -n N ...; on by itself under mpiexec with "
                        "N > 1); --batch-size is then the global batch. Needs pip install -e '.[mpi]'")
    return p


def setup_backend(args, resume_flags=None) -> None:
    """Everything before the data: check that --out can be written, take the settings of a
    --resume'd checkpoint for the flags left out, switch to the requested backend and say
    where we run.  ``resume_flags``: {flag attribute: builder argument} of model settings
    that a resumed run takes from the checkpoint too (e.g. {"beta": "beta"})."""
    set_threads(getattr(args, "threads", None))
    prepare_out(args)
    if args.resume:
        resume_settings(args, resume_flags or {})
    try:
        backend.use(args.backend)
    except backend.BackendError as exc:
        raise UsageError(str(exc)) from None
    if getattr(args, "distributed", False) or distributed.launched_size() > 1:
        try:     # after backend.use: on CuPy each rank picks its GPU.  An exception that escapes
            #      on any rank ends the whole job (MPI_Abort) instead of leaving the others waiting.
            args.world = distributed.init(abort_on_error=True)
        except distributed.DistributedError as exc:
            raise UsageError(str(exc)) from None
        _sweep_scratch()
        _SCRATCH["job"] = args.world.bcast(os.urandom(4).hex() if args.world.is_root else None)
        if not args.world.is_root:
            _quiet_rank(args)
    print(backend.describe_device(), flush=True)


def set_threads(n=None) -> int:
    """Limit the CPU threads (BLAS and the optimizer engine) to ``n`` now, NumPy already loaded;
    ``n`` None: the first of $OPENBLAS_NUM_THREADS / $OMP_NUM_THREADS / $MKL_NUM_THREADS that
    is a whole number >= 1, else 1 (see THREADS_ENV above for why one)."""
    if n is None:
        n = next((int(v) for v in (os.environ.get(k, "").strip() for k in THREADS_ENV)
                  if v.isdigit() and int(v) >= 1), 1)
    return backend.set_num_threads(n)


SCRATCH_PREFIX = "tinyae-rank"   # ranks > 0: tempfile.gettempdir()/tinyae-rank<r>-<random>/
SCRATCH_LOCK = ".in-use"        # held (flock) by the rank that owns the folder, for as long as it lives
RANK_GRACE = 5.0                # seconds a rank > 0 waits for rank 0 to report an error they share
_SCRATCH = {}                   # this process's scratch folder and the open file holding its lock


def _quiet_rank(args) -> None:
    """Ranks other than 0 compute what rank 0 computes but write nowhere: their stdout goes
    to /dev/null and ``args.out`` to a scratch folder deleted at exit (fit leaves checkpoints
    and callbacks to rank 0 already; this covers each script's own prints and final figures,
    which N ranks writing to one path would garble).  Errors still reach stderr.

    ``args.shared_out`` keeps the real --out: messages about the checkpoint name it (rank 0's
    files), never the scratch folder.  The folder is locked while its rank lives, so a job
    that was aborted or killed (no exit handler runs then) leaves nothing for long: the next
    run under MPI removes every scratch folder whose lock is free (:func:`_sweep_scratch`)."""
    import atexit
    import tempfile
    sys.stdout = open(os.devnull, "w")
    args.shared_out = args.out
    args.out = pathlib.Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{args.world.rank}-{_SCRATCH['job']}-"))
    args._before = {}
    _SCRATCH["path"] = args.out
    try:
        import fcntl
        fd = os.open(args.out / SCRATCH_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        _SCRATCH["lock"] = fd
    except (ImportError, OSError):
        pass
    atexit.register(_remove_scratch)


def _remove_scratch() -> None:
    import shutil
    path = _SCRATCH.pop("path", None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _sweep_scratch(job=None) -> list:
    """Remove the scratch folders of ranks that are gone (their lock is free; an aborted or
    killed job skips its exit handlers); return their names.  Only this user's folders named
    ``tinyae-rank<r>-<job>-…`` in the temporary directory; a folder without a lock file only once
    it is a day old.  ``job`` given: the folders of that job on this machine, locked or not
    (rank 0 is about to end the job)."""
    import re
    import shutil
    import stat
    import tempfile
    import time
    try:
        import fcntl
    except ImportError:
        return []
    tmp = tempfile.gettempdir()
    try:
        entries = os.listdir(tmp)
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not re.fullmatch(re.escape(SCRATCH_PREFIX) + r"\d+-[0-9a-f]+-[A-Za-z0-9_]+", entry):
            continue
        if job is not None and entry.split("-")[2] != job:
            continue
        folder = os.path.join(tmp, entry)
        try:
            st = os.lstat(folder)
        except OSError:            # removed meanwhile (by its own rank, ending)
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            continue
        try:
            fd = os.open(os.path.join(folder, SCRATCH_LOCK), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            if job is not None or time.time() - st.st_mtime > 86400:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(entry)
            continue
        except OSError:
            continue
        try:
            if job is None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue               # its rank is alive (or locks do not work here: leave it)
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(entry)
    return removed


def prepare_out(args) -> None:
    """Create --out and make sure a file can be written there, before any training; remember
    which files it holds, so that :func:`done` lists only what this run wrote."""
    out = args.out
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: pass a folder for the figures and "
                         "checkpoints (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out} cannot be written ({exc.strerror or exc}): pass a folder you "
                         "can write to") from None
    args._before = _snapshot(out)


def _snapshot(folder) -> dict:
    out = {}
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        out[p.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def explicit(flag: str, argv=None) -> bool:
    """Whether ``flag`` (e.g. "--lr") was given on the command line (abbreviations are off)."""
    argv = sys.argv[1:] if argv is None else argv
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def resume_settings(args, resume_flags: dict) -> None:
    """With --resume and a checkpoint in --out: flags left out take the checkpoint's values
    (--lr, --batch-size, --seed and ``resume_flags``); an explicit --seed that differs is refused."""
    found = sorted(args.out.glob("checkpoint*.npz"), key=lambda p: p.name != "checkpoint.npz")
    if not found:
        return
    path = found[0]
    state = inspect_checkpoint(path)
    saved = {"seed": state.settings.get("seed"), "batch_size": state.settings.get("batch_size")}
    if "lr" in state.optimizer_state:
        saved["lr"] = float(state.optimizer_state["lr"])
    for attr, key in resume_flags.items():
        if key in state.builder_kwargs:
            saved[attr] = state.builder_kwargs[key]
    if explicit("--seed") and saved["seed"] is not None and saved["seed"] != args.seed:
        raise UsageError(f"--seed {args.seed} differs from the seed {saved['seed']} that {path} was "
                         f"trained with: a resumed run keeps its seed (data order and noise); leave "
                         f"--seed out, or start afresh with another --out")
    for attr, value in saved.items():
        flag = "--" + attr.replace("_", "-")
        if value is not None and hasattr(args, attr) and not explicit(flag):
            setattr(args, attr, value)


def load_images(args, *, size: int = 28, value_range: str = "unit", dataset: str = "mnist"):
    """(x_train, y_train, x_test, y_test): float32 images flattened to (N, size²), labels int."""
    def prepare(split):
        images, labels = data.load_dataset(dataset, split=split, subset=args.data)
        if args.limit:
            n = args.limit if split == "train" else max(args.limit // 5, 1)
            images, labels = images[:n], labels[:n]
        x = data.to_float(images, range=value_range)
        if size != 28:
            x = data.resize(x, size=size)
        return data.flatten(x), np.asarray(labels)

    x_train, y_train = prepare("train")
    x_test, y_test = prepare("test")
    print(f"data: {len(x_train):,} train / {len(x_test):,} test images, {size}x{size}, "
          f"pixels in {'[0, 1]' if value_range == 'unit' else '[-1, 1]'}", flush=True)
    return x_train, y_train, x_test, y_test


def arch_defaults(args, table: dict) -> dict:
    """Fill the flags left at None from ``table[args.arch]``; return that row (the arch's settings)."""
    row = table[args.arch]
    for key, value in row.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return row


def shared_out(args) -> pathlib.Path:
    """The --out folder the user named: ``args.out`` itself, except on MPI ranks > 0, whose
    ``args.out`` is a scratch folder (fit writes the checkpoint on rank 0 only, but every rank
    must name the same file in its messages)."""
    return getattr(args, "shared_out", None) or args.out


def fit_options(args, checkpoint: str = "checkpoint.npz") -> dict:
    """The keyword arguments of :func:`tinyae.train.fit` that come from the common flags."""
    return dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                checkpoint=shared_out(args) / checkpoint, resume=args.resume,
                progress=not args.no_progress, log=lambda line: print(line, flush=True),
                distributed=getattr(args, "world", None) or False)


def on_device(x):
    """A host array as a batch on the active backend, in the default dtype."""
    return backend.asarray(x, dtype=backend.default_dtype())


def run(fn, x, batch_size: int = 500):
    """``fn`` (a model method) applied to host array ``x`` in chunks; the result on the host.

    Chunks keep the device memory of large inputs bounded (call ``model.eval()`` first).
    """
    out = [backend.to_numpy(fn(on_device(x[i:i + batch_size]))) for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def decoder_fn(model):
    """codes (host, (n, k)) → decoded images (host) — the form tinyae.plot's decoders take."""
    return lambda z: backend.to_numpy(model.decode(on_device(z)))


def n_params(model) -> str:
    """The number of trainable values of a model, like "13,043"."""
    return f"{sum(int(p.data.size) for p in model.parameters()):,}"


# --augment, said once for every script that has it
AUGMENT_HELP = ("train on batches flipped left-right (p = 0.5) and rotated by up to ±10° per image, "
                "as the chapter's RandomHorizontalFlip(0.5) + RandomRotation(10); off by default")
AUGMENT_NOTE = ("augmentation: each training batch rotated by U(-10°, 10°) and flipped left-right with "
                "probability 0.5, per image (seeded per epoch)")
FILTERS_TITLE = "first-layer filters (each scaled to its max |w|; red +, blue −)"


def flip_rotate(side: int, fill: float, max_degrees: float = 10.0, flip_prob: float = 0.5):
    """The 14×14 chapter's ``RandomHorizontalFlip(0.5)`` + ``RandomRotation(10)`` as a
    :class:`tinyae.data.DataLoader` transform (``--augment``): ``transform(xb, rng)`` takes a
    host batch of flattened images (N, side²) and returns it with each image rotated by an angle
    from U(−max_degrees, max_degrees) about its centre and mirrored left-right with probability
    ``flip_prob`` (:func:`tinyae.data.random_rotate_flip`: bilinear, ``fill`` from outside —
    the background, −1 for pixels in [−1, 1]).  ``rng`` is the loader's (seed, epoch) stream."""
    def transform(xb, rng):
        images = xb.reshape(len(xb), side, side)
        return data.random_rotate_flip(images, rng, max_degrees=max_degrees, flip_prob=flip_prob,
                                       fill=fill).reshape(xb.shape)
    return transform


def one_per_class(labels, n: int = 8) -> np.ndarray:
    """Indices of the first test digit of each class in turn (0, 1, 2, …), ``n`` of them."""
    labels = np.asarray(labels)
    picks, classes = [], np.unique(labels)
    for i in range(n):
        hits = np.flatnonzero(labels == classes[i % len(classes)])
        if len(hits):
            picks.append(hits[(i // len(classes)) % len(hits)])
    return np.asarray(picks)


def done(args) -> None:
    """The last line: the files this run wrote (per-epoch series as name_{1..N}.png)."""
    import re
    before = getattr(args, "_before", {})
    now = _snapshot(args.out)
    written = sorted(name for name, stamp in now.items()
                     if before.get(name) != stamp and not name.startswith("."))
    series, single = {}, []
    for name in written:
        m = re.fullmatch(r"(.+)_(\d+)\.png", name)
        if m:
            series.setdefault(m.group(1), []).append(int(m.group(2)))
        elif name.endswith((".png", ".gif", ".npz")):
            single.append(name)
    names = [f"{k}_{{{min(v)}..{max(v)}}}.png" if len(v) > 1 else f"{k}_{v[0]}.png"
             for k, v in series.items()] + single
    print(f"wrote to {args.out}/: " + (", ".join(names) if names else "nothing new"), flush=True)


def curve_keys(records) -> list:
    """The train_*/test_* keys of ``records`` worth a line: a part equal to the total loss in
    every epoch (the "recon" of a model with no other term) is left out, so no line is drawn
    twice."""
    keys = []
    for r in records:
        keys += [k for k in r if k.startswith(("train_", "test_")) and k not in keys
                 and isinstance(r[k], (int, float))]
    drop = set()
    for k in keys:
        split = k.split("_", 1)[0]
        total = f"{split}_loss"
        if k != total and total in keys and all(r.get(k) == r.get(total) for r in records):
            drop.add(k)
    seen = {}
    for k in keys:       # any other identical pair: keep the first
        if k in drop:
            continue
        series = tuple(r.get(k) for r in records)
        if series in seen and k.split("_", 1)[0] == seen[series].split("_", 1)[0]:
            drop.add(k)
        else:
            seen.setdefault(series, k)
    return [k for k in keys if k not in drop]


def save_loss_curves(records, path, **kwargs):
    """:func:`tinyae.plot.save_loss_curves` without duplicate lines (see :func:`curve_keys`)."""
    return plot.save_loss_curves(records, path, keys=curve_keys(records), **kwargs)


def run_cli(body, parser, argv=None) -> None:
    """Parse the flags and run ``body(args)``.  A user's mistake ends in one ``error: …`` line
    on stderr (exit status 2), Ctrl-C in one line saying what the checkpoint holds (exit
    status 130): never a traceback.  ``TINYAE_TRACEBACK=1`` shows the traceback anyway (for
    bug reports)."""
    args = parser.parse_args(argv)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # (left alone where ignored)
        signal.signal(signal.SIGINT, _first_interrupt)
        sys.unraisablehook = _interrupt_lost_in_a_finalizer
    if not isinstance(sys.stdout, _PipeSafe) and hasattr(sys.stdout, "fileno"):
        if hasattr(sys.stdout, "reconfigure"):     # a path the terminal's encoding lacks (PYTHONIOENCODING=
            sys.stdout.reconfigure(errors="backslashreplace")   # ascii) is escaped, not a crash at the end
        sys.stdout = _PipeSafe(sys.stdout)
    if os.environ.get("TINYAE_TRACEBACK", "") not in ("", "0"):
        body(args)
        return
    try:
        body(args)
    except TrainingInterrupted as exc:
        _exit(130, _interrupted(exc))
    except KeyboardInterrupt:
        _exit(130, _interrupted_outside_fit(args))
    except Exception as exc:
        if _ctrl_c_behind(exc):     # a library's clean-up turned the Ctrl-C into an error of its own
            _exit(130, _interrupted_outside_fit(args))
        _user_error(exc)


def _ctrl_c_behind(exc) -> bool:
    """True when a KeyboardInterrupt is in the chain of exceptions ``exc`` was raised during."""
    seen = exc.__context__
    while seen is not None and not isinstance(seen, KeyboardInterrupt):
        seen = seen.__context__
    return seen is not None


def _user_error(exc) -> None:
    """Exit 2 with one ``error:`` line for a user's mistake; re-raise anything else (a bug)."""
    if isinstance(exc, (UsageError, CheckpointError, TrainingError, data.DataError, backend.BackendError,
                        distributed.DistributedError)):
        _exit(2, f"error: {exc}")
    if isinstance(exc, MemoryError):
        what = f" ({exc})" if str(exc) else ""
        _exit(2, f"error: out of memory{what}: try a smaller --batch-size or --limit, or a smaller model "
                 "(--latent-dim and the like)")
    if isinstance(exc, OSError):
        _exit(2, f"error: {_os_error(exc)}")
    if isinstance(exc, ValueError):     # the library's argument checks name the argument and the value
        _exit(2, f"error: {exc}")
    raise exc


def _os_error(exc: OSError) -> str:
    """One line for a failed file operation, with the advice that fits what failed."""
    import errno
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        advice = "free some disk space or pass another --out"
    elif exc.errno == errno.EROFS:
        advice = "the file system is read-only: pass another --out"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        advice = "pass an --out you can write to"
    elif exc.errno == errno.ENOENT:
        advice = "a file or folder was removed while the run used it (another program or run?)"
    else:
        advice = "see the file named above"
        if not exc.filename:
            advice = "a file operation failed"
    return f"{exc.strerror or exc}{where}: {advice} (--resume continues from the last checkpoint)"


class _PipeSafe:
    """stdout that survives the reader going away (``… | head -1``): the first write to a
    closed pipe turns stdout into /dev/null, and training goes on to its checkpoints."""

    def __init__(self, stream):
        self.stream = stream

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())       # the interpreter's last flush goes there too
            os.close(devnull)
            return None

    def write(self, text):
        return self._guard(self.stream.write, text)

    def flush(self):
        return self._guard(self.stream.flush)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _first_interrupt(signum, frame):
    """SIGINT: KeyboardInterrupt once; later ones are ignored while the first is reported.
    (A second one would land in the middle of the clean-up and print a traceback: under
    mpiexec every rank gets the terminal's Ctrl-C and then the one mpiexec passes on.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _interrupt_lost_in_a_finalizer(unraisable, _default=sys.unraisablehook):
    """``sys.unraisablehook`` (set by :func:`run_cli` with the SIGINT handler): a Ctrl-C that
    arrives while Python runs a finalizer or a weakref callback (a progress bar or a cache
    being collected) raises there, and Python prints it and goes on, training to the end.
    Such a lost KeyboardInterrupt is asked for again, 50 ms later, from ordinary code."""
    if not issubclass(unraisable.exc_type, KeyboardInterrupt):
        return _default(unraisable)
    import threading  # noqa: PLC0415
    signal.signal(signal.SIGINT, _first_interrupt)       # (finalizers run in the main thread here)
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()


def _interrupted_outside_fit(args) -> str:
    """Ctrl-C outside tinyae.train.fit (loading data, drawing, a hand-written loop)."""
    out = shared_out(args) if getattr(args, "out", None) is not None else None
    path = out / "checkpoint.npz" if out is not None else None
    if path is None or not path.exists():
        return "interrupted; no checkpoint was written yet: nothing to resume, run again"
    try:
        epoch = inspect_checkpoint(path).epoch
    except (CheckpointError, OSError):
        return f"interrupted; the checkpoint {path} cannot be read"
    return f"interrupted; the checkpoint {path} holds epoch {epoch}; --resume continues"


def _interrupted(exc) -> str:
    if exc.checkpoint is None:
        return f"interrupted in epoch {exc.epoch}"
    if exc.saved:
        return (f"interrupted in epoch {exc.epoch}; the checkpoint {exc.checkpoint} holds epoch {exc.saved}; "
                "--resume continues")
    return (f"interrupted in epoch {exc.epoch}, before the first checkpoint ({exc.checkpoint}) was written: "
            "nothing to resume, run again")


def _exit(status, line):
    sys.stdout.flush()
    world = distributed.get_world()
    if world.size > 1 and not world.is_root:
        # Under MPI a mistake (or Ctrl-C, which mpiexec passes to every rank) usually reaches all
        # ranks: rank 0 says it, once, and ends the job.  The others wait for that, and speak
        # (naming their rank) only if rank 0 did not end the job: an error of their own.
        import time
        _remove_scratch()          # MPI_Abort skips exit handlers
        time.sleep(RANK_GRACE)
        if status != 130:
            line = f"{line} (rank {world.rank} of {world.size})"
    elif world.size > 1 and "job" in _SCRATCH:
        _sweep_scratch(job=_SCRATCH["job"])    # the other ranks on this machine end with the job
    # prints the line; under MPI it ends every rank (one rank's SystemExit would leave the others waiting)
    distributed.abort(line, status)


def quiet_env() -> None:
    """Figures without a display."""
    os.environ.setdefault("MPLBACKEND", "Agg")
