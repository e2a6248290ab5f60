r"""Data-parallel training over MPI: N processes train one model, with the mathematics of one.

Launch N copies of the same script; each trains the same model on its own share of every
minibatch, and after each backward pass the processes ("ranks") combine their gradients
with one collective operation, so every rank takes exactly the same optimizer step::

    mpiexec -n 2 python examples/vae_mnist.py --distributed

Why one sum of gradients is enough (docs/distributed.md has the long form).  For a loss
that averages over a global batch of B samples, split over the ranks as B = Σ_r n_r,

    ∇ (1/B) Σ_i ℓ_i  =  Σ_r (n_r / B) · [ (1/n_r) Σ_{i on rank r} ∇ℓ_i ]  =  Σ_r w_r g_r,

so the global gradient is the weighted sum of the local (mean) gradients g_r, with weights
w_r = n_r / B (= 1/N when the local batches are equal).  For a loss that *sums* over the
batch (the VAEs, ``model.reduction == "sum"``) the weights are all 1.  Each rank scales its
gradient by w_r and one ``Allreduce(SUM)`` of the optimizer's flat gradient buffer
(:class:`tinyae.optim.FlatBuffers` keeps every gradient in one contiguous array) leaves the
global gradient on every rank; each rank then runs the same update on the same parameters.

The pieces, in the order a training script uses them:

    world = distributed.init()                    # MPI up; a failing rank aborts the job
    model = models.build(..., seed=0)
    opt = distributed.DistributedOptimizer(Adam(model.parameters()), reduction=model.reduction)
    distributed.broadcast_parameters(model)       # rank 0's weights everywhere
    distributed.broadcast_optimizer_state(opt)    # (after rank 0 loaded a checkpoint)
    loader = distributed.ShardedLoader(x_train, batch_size=128, seed=0)   # 128 = global batch
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        distributed.seed_noise(model, seed=0, epoch=epoch)
        for xb, _ in loader:
            total, parts = model.loss(xb)
            opt.zero_grad()
            model.backward_loss(need_dx=False)   # x is data: no dL/dx
            opt.step(count=len(xb), total=loader.global_count)   # one Allreduce, then Adam
        ...                                       # world.sum(...) for the reported losses
        if world.is_root: save figures / checkpoint (with opt.optimizer, the inner one)

:func:`tinyae.train.fit` does all of this with ``fit(..., distributed=True)``.

Choices, where the method leaves room:

* **Sharding.** Epoch e's permutation is ``default_rng([seed, e]).permutation(n)`` on every
  rank — the very order :class:`tinyae.data.DataLoader` uses — cut into global batches of
  ``batch_size``; rank r takes the r-th of N near-equal contiguous slices of each global
  batch.  So N ranks see, step for step, the samples one process with the same batch size
  sees, and every rank has the same number of batches (no collective can be left waiting).
  Local batches of one step differ by at most one sample; the weights above make that
  exact.  Neither pad nor drop, except: a last global batch with fewer samples than ranks
  (some rank would get none) is **dropped** (:attr:`ShardedLoader.dropped` says how many).
* **Noise.** Rank 0 keeps the model's own noise generators (saved in checkpoints, as in a
  single-process run); every other rank r reseeds them at each epoch from
  ``(seed, epoch, r)`` (:func:`seed_noise`), so the ranks draw independent ε and masks and a
  resumed run draws what an uninterrupted one would.
* **Writing.** Only rank 0 writes logs, progress bars, figures and checkpoints; the reported
  losses are sums over all ranks (:meth:`World.sum`).  Checkpoints are written by rank 0
  alone, atomically (:func:`tinyae.checkpoint.save_checkpoint`), so none is ever half-written.
* **Faults.** After :func:`init`, an exception that escapes on any rank prints the rank and
  the error and calls ``MPI_Abort``, which ends every process of the job (instead of the
  others waiting forever in their next Allreduce).  A rank that wants out on purpose calls
  :func:`abort`: a plain ``sys.exit`` on one rank alone would leave the others hanging.
* **Resume with another process count** works: the data order and the global batches do not
  depend on N, only the cut of each global batch does (the noise streams of ranks > 0 do).
* **GPU.** With CuPy arrays the same sum runs over NCCL (CuPy's ``cupy.cuda.nccl``), one GPU
  per local rank (:func:`init` picks it); without NCCL the gradient is staged through the
  host and summed by MPI.

Needs ``mpi4py`` and an MPI runtime: ``pip install -e ".[mpi]"`` (mpi4py + the MPICH wheel).
"""
from __future__ import annotations

import os
import sys

import numpy

from . import backend
from ._checks import same_length

__all__ = ["DistributedError", "INSTALL_HINT", "World", "init", "get_world", "is_initialized", "launched_size",
           "abort", "DistributedOptimizer", "ShardedLoader", "broadcast_parameters",
           "broadcast_optimizer_state", "seed_noise", "on_all_ranks", "NcclReducer", "FitPlan"]

INSTALL_HINT = 'distributed training needs mpi4py and an MPI runtime: pip install -e ".[mpi]"'


class DistributedError(RuntimeError):
    """Distributed training cannot start or go on (MPI missing, inconsistent ranks, ...)."""


def launched_size() -> int:
    """How many processes the MPI launcher started, from its environment (1 if none).

    Read without importing MPI: MPICH/Hydra and Intel MPI set PMI_SIZE, Open MPI sets
    OMPI_COMM_WORLD_SIZE.  The examples use it to go distributed when run under mpiexec.
    """
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def _import_mpi():
    """mpi4py's MPI module, or a DistributedError saying what to install."""
    try:
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency)
    except ImportError as exc:
        raise DistributedError(f"{INSTALL_HINT} (import of mpi4py failed: {exc})") from None
    except RuntimeError as exc:   # mpi4py present, but no MPI library it can load
        raise DistributedError(f"{INSTALL_HINT} (mpi4py found no MPI library: {exc})") from None
    return MPI


# ---------------------------------------------------------------------------------------
# The world: who we are, and the few collectives training needs
# ---------------------------------------------------------------------------------------
class World:
    """The processes of one job: ``rank`` (0 … size−1), ``size``, and their collectives.

    ``World()`` with no communicator is the one-process world: every collective is the
    identity, so code written for N ranks runs unchanged on one.
    """

    def __init__(self, comm=None, MPI=None):
        self.comm, self.MPI = comm, MPI
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        # the rank among the processes on this machine: which GPU this rank drives
        self.local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank() if comm is not None else 0
        self.nccl = None          # an NcclReducer once CuPy gradients are first summed (False: never)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def __repr__(self):
        return f"World(rank {self.rank} of {self.size})"

    # -- collectives on Python objects (small: flags, histories, optimizer state) ---------
    def bcast(self, obj, root: int = 0):
        """``obj`` from rank ``root`` on every rank (pickled: for small things)."""
        return obj if self.comm is None else self.comm.bcast(obj, root=root)

    def barrier(self):
        if self.comm is not None:
            self.comm.Barrier()

    def sum(self, values) -> list:
        """Element-wise sum over the ranks of a list of numbers, as Python floats."""
        buf = numpy.array([float(v) for v in values], dtype=numpy.float64)
        if self.comm is not None and self.size > 1:
            self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return [float(v) for v in buf]

    # -- collectives on arrays, in place ------------------------------------------------
    def allreduce_(self, a):
        """Replace the contiguous array ``a`` by its sum over all ranks (on every rank).

        NumPy arrays: MPI's Allreduce.  CuPy arrays: NCCL when CuPy has it, else a copy to
        the host, MPI, and back.
        """
        if self.comm is None or (self.size == 1 and not self.nccl):
            return a
        if self.nccl or backend.is_cupy_array(a):
            reducer = self._nccl_reducer(backend.get_array_module(a))
            if reducer is not None:
                reducer.allreduce_(a)
                return a
            host = backend.to_numpy(a)
            self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
            a[...] = backend.get_array_module(a).asarray(host)
            return a
        self.comm.Allreduce(self.MPI.IN_PLACE, a, op=self.MPI.SUM)
        return a

    def broadcast_(self, a, root: int = 0):
        """Overwrite array ``a`` with rank ``root``'s ``a`` (through the host: used once per run)."""
        if self.comm is None or self.size == 1:
            return a
        host = numpy.ascontiguousarray(backend.to_numpy(a))
        self.comm.Bcast(host, root=root)
        if backend.is_cupy_array(a):
            a[...] = backend.get_array_module(a).asarray(host)
        else:
            a[...] = host
        return a

    def _nccl_reducer(self, xp):
        """The NCCL communicator of this job's GPUs, set up on first use (None without NCCL)."""
        if self.nccl is None:
            nccl = _nccl_module(xp)
            self.nccl = NcclReducer(self, nccl) if nccl is not None else False
        return self.nccl or None

    def use_nccl(self, nccl_module):
        """Sum every array through ``NcclReducer(self, nccl_module)`` from now on (even on one
        rank); ``False``: never use NCCL (CuPy arrays go through the host and MPI).

        Normally set up by itself for CuPy arrays; the CPU test passes a stand-in module here to
        walk the NCCL code path (unique id, communicator, in-place allReduce) without a GPU.
        """
        self.nccl = NcclReducer(self, nccl_module) if nccl_module is not False else False
        return self.nccl

    # -- sharding ----------------------------------------------------------------------
    def shard(self, n: int) -> slice:
        """This rank's contiguous share of ``range(n)`` (sizes differ by at most one)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)


class NcclReducer:
    """In-place sums of device arrays over NCCL, one communicator for all ranks' GPUs.

    Setting up: rank 0 asks NCCL for a unique id, MPI broadcasts it, and every rank joins the
    communicator with (size, id, rank).  Each sum is then one ``allReduce`` on the current
    CUDA stream, with the same pointer as input and output (NCCL allows in place), so the
    optimizer's kernels that follow on the stream see the summed gradient without a sync.
    """

    def __init__(self, world: World, nccl):
        self.world, self.nccl = world, nccl
        uid = nccl.get_unique_id() if world.rank == 0 else None
        uid = world.bcast(uid)
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)
        self.dtypes = {numpy.dtype(numpy.float32): nccl.NCCL_FLOAT32,
                       numpy.dtype(numpy.float64): nccl.NCCL_FLOAT64}

    def allreduce_(self, a):
        if numpy.dtype(a.dtype) not in self.dtypes:
            raise DistributedError(f"NCCL allreduce: dtype {a.dtype} not supported (float32 or float64)")
        ptr = _pointer(a)
        self.comm.allReduce(ptr, ptr, a.size, self.dtypes[numpy.dtype(a.dtype)], self.nccl.NCCL_SUM,
                            _stream(a))
        return a


def _nccl_module(cupy):
    """CuPy's NCCL bindings (``cupy.cuda.nccl``, a submodule of the module the backend gave us),
    or None where this CuPy was built without NCCL."""
    if cupy is numpy:
        return None
    try:
        import importlib
        nccl = importlib.import_module(cupy.__name__ + ".cuda.nccl")
    except ImportError:
        return None
    return nccl if getattr(nccl, "available", True) else None


def _pointer(a) -> int:
    """The address of ``a``'s first element: device memory for CuPy, host memory for NumPy
    (NumPy only in the CPU dry run of :class:`NcclReducer`)."""
    if not a.flags.c_contiguous:
        raise DistributedError("allreduce needs a contiguous array")
    return a.data.ptr if backend.is_cupy_array(a) else a.ctypes.data


def _stream(a) -> int:
    """The current CUDA stream's handle for CuPy arrays; 0 (the default stream) otherwise."""
    if backend.is_cupy_array(a):
        return backend.get_array_module(a).cuda.get_current_stream().ptr
    return 0


_WORLD = {"world": None}


def init(abort_on_error: bool = True) -> World:
    """Start MPI (once) and return the :class:`World` of this job.

    abort_on_error: install a ``sys.excepthook`` that, when an exception escapes on any rank,
        prints "rank r of N" with the error and its traceback and calls ``MPI_Abort``, which
        ends the whole job (the other ranks would otherwise wait in their next collective).
    On the CuPy backend each rank also makes GPU ``local_rank % device_count`` current: call
    ``init`` after ``backend.use("cupy")`` and before building the model.
    Raises :class:`DistributedError` (with the pip command) when mpi4py cannot be imported.
    """
    if _WORLD["world"] is not None:
        return _WORLD["world"]
    MPI = _import_mpi()
    w = World(MPI.COMM_WORLD, MPI)
    if abort_on_error and w.size > 1:
        _install_abort_hook(w)
    if backend.current() == "cupy":
        cp = backend.xp()
        cp.cuda.Device(w.local_rank % cp.cuda.runtime.getDeviceCount()).use()
    _WORLD["world"] = w
    return w


def is_initialized() -> bool:
    return _WORLD["world"] is not None


def get_world() -> World:
    """The job's World after :func:`init`; the one-process World before."""
    return _WORLD["world"] or World()


def _install_abort_hook(w: World):
    previous = sys.excepthook

    def abort_job(kind, value, tb):
        sys.stderr.write(f"tinyae.distributed: rank {w.rank} of {w.size} failed with "
                         f"{kind.__name__}: {value}\n")
        previous(kind, value, tb)
        sys.stderr.write(f"tinyae.distributed: rank {w.rank} aborts all {w.size} processes\n")
        sys.stderr.flush()
        sys.stdout.flush()
        w.comm.Abort(1)

    sys.excepthook = abort_job


def abort(message: str, code: int = 2):
    """Print ``message`` (one line, on stderr) and end the whole job from this rank.

    The way out for one rank alone: ``sys.exit`` on one rank would leave the others waiting.
    On a single process (or before :func:`init`) it is ``SystemExit(code)``.
    """
    print(message, file=sys.stderr, flush=True)
    w = _WORLD["world"]
    if w is not None and w.size > 1:
        sys.stdout.flush()
        w.comm.Abort(code)
    raise SystemExit(code)


# ---------------------------------------------------------------------------------------
# Parameters, optimizer state, noise
# ---------------------------------------------------------------------------------------
def broadcast_parameters(model_or_params, root: int = 0, world: World | None = None):
    """Copy rank ``root``'s parameters into every rank's (same names, same shapes).

    Models built from one seed start equal anyway; the broadcast makes it so whatever the
    seeds, and after rank 0 alone loaded a checkpoint.
    """
    w = world or get_world()
    params = model_or_params.parameters() if hasattr(model_or_params, "parameters") else model_or_params
    shapes = w.bcast([tuple(p.shape) for p in params] if w.rank == root else None, root=root)
    mine = [tuple(p.shape) for p in params]
    if shapes != mine:
        raise DistributedError(f"rank {w.rank}: the model's parameter shapes differ from rank {root}'s "
                               f"({len(mine)} arrays vs {len(shapes)}): every rank must build the same "
                               "architecture")
    for p in params:
        w.broadcast_(p.data, root=root)
    return model_or_params


def broadcast_optimizer_state(optimizer, root: int = 0, world: World | None = None):
    """Give every rank rank ``root``'s optimizer state (step count, lr, moments).

    Needed after rank 0 alone resumed from a checkpoint; harmless (and cheap) otherwise.
    """
    w = world or get_world()
    inner = getattr(optimizer, "optimizer", optimizer)
    state = w.bcast(inner.state_dict() if w.rank == root else None, root=root)
    if w.rank != root:
        inner.load_state_dict(state)
    return optimizer


def seed_noise(model, seed: int, epoch: int, world: World | None = None):
    """Give each rank > 0 its own noise for epoch ``epoch``: every module's generator
    (``Module.generator()``) is reseeded from (seed, epoch, rank, module index).  Rank 0 keeps its streams
    (the ones a checkpoint saves), so its noise is a single-process run's."""
    w = world or get_world()
    if w.rank == 0:
        return model
    for i, (_, mod) in enumerate(model.named_modules()):
        rng = mod.generator()
        if isinstance(rng, numpy.random.Generator):
            fresh = type(rng.bit_generator)(numpy.random.SeedSequence([seed, epoch, w.rank, i]))
            rng.bit_generator.state = fresh.state
    return model


def on_all_ranks(callback):
    """Mark a :func:`tinyae.train.fit` callback to run on every rank (e.g. a learning-rate
    schedule, which must change every rank's optimizer).  Unmarked callbacks (figures,
    early stopping) run on rank 0 only; a StopTraining there stops every rank."""
    callback.all_ranks = True
    return callback


# ---------------------------------------------------------------------------------------
# The optimizer wrapper: one Allreduce of the flat gradient buffer, then the usual step
# ---------------------------------------------------------------------------------------
class DistributedOptimizer:
    """``optimizer`` whose :meth:`step` first sums the ranks' weighted gradients.

    reduction: the model's loss reduction (``model.reduction``): "mean" weights rank r's
        gradient by n_r / Σ n (its share of the global batch), "sum" adds them unweighted.
    ``lr``, ``params``, ``step_count``, ``zero_grad`` and the state dict are the wrapped
    optimizer's (``opt.lr = …`` sets its learning rate); anything else, ask ``opt.optimizer``,
    which is also what checkpoints save (they record the optimizer's own class).
    """

    __slots__ = ("optimizer", "reduction", "world")   # opt.betas = … would be lost: refused instead

    def __init__(self, optimizer, reduction: str = "mean", world: World | None = None):
        if reduction not in ("mean", "sum"):
            raise ValueError(f"DistributedOptimizer: reduction must be 'mean' or 'sum' "
                             f"(the model's loss reduction, model.reduction), got {reduction!r}")
        if isinstance(optimizer, DistributedOptimizer):
            raise ValueError("DistributedOptimizer: the optimizer is already wrapped")
        self.optimizer, self.reduction = optimizer, reduction
        self.world = world or get_world()

    @property
    def lr(self):
        return self.optimizer.lr

    @lr.setter
    def lr(self, value):
        self.optimizer.lr = value

    @property
    def params(self):
        return self.optimizer.params

    @property
    def step_count(self):
        return self.optimizer.step_count

    def zero_grad(self):
        self.optimizer.zero_grad()

    def weight(self, count=None, total=None) -> float:
        """This rank's weight w_r: 1 for "sum"; count/total (1/N if count is None) for "mean".

        total, the samples of the whole step, is summed over the ranks when not given (one
        extra, tiny Allreduce; :class:`ShardedLoader` knows it without communicating).
        """
        if self.reduction == "sum":
            return 1.0
        if count is None:
            return 1.0 / self.world.size
        if total is None:
            total = self.world.sum([count])[0]
        if total <= 0:
            raise DistributedError("DistributedOptimizer.step: no rank had a sample in this step")
        return float(count) / float(total)

    def allreduce_gradients(self, count=None, total=None):
        """Every param.grad becomes the global gradient Σ_r w_r g_r (the same on every rank)."""
        w = self.weight(count, total)
        grad = self.optimizer.flat_grad()                     # every gradient in one buffer, or None
        if grad is not None:
            if w != 1.0:
                grad *= w
            self.world.allreduce_(grad)
            return
        params = self.optimizer.params                        # no flat buffer: pack, sum, unpack
        xp = backend.get_array_module(params[0].grad)
        grad = xp.concatenate([p.grad.reshape(-1) for p in params])
        if w != 1.0:
            grad *= w
        self.world.allreduce_(grad)
        start = 0
        for p in params:
            p.grad[...] = grad[start:start + p.grad.size].reshape(p.grad.shape)
            start += p.grad.size

    def step(self, count=None, total=None):
        """Sum the gradients over the ranks (weights: :meth:`weight`), then the inner step.

        count: this rank's samples in the step (``len(xb)``); total: all ranks' together.
        Leave both out when every rank's local batch has the same size.
        """
        self.allreduce_gradients(count, total)
        self.optimizer.step()

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.optimizer.load_state_dict(state)
        return self

    def __repr__(self):
        return f"DistributedOptimizer({type(self.optimizer).__name__}, {self.reduction}, {self.world})"


# ---------------------------------------------------------------------------------------
# Data: this rank's part of every global batch
# ---------------------------------------------------------------------------------------
class ShardedLoader:
    """Rank r's slice of every global batch of ``batch_size`` samples, reshuffled each epoch.

    The epoch's order is :class:`tinyae.data.DataLoader`'s (``default_rng([seed, e])``), the
    same on every rank; global batch i (samples i·B … (i+1)·B − 1 of that order) is cut into
    ``size`` near-equal contiguous slices and rank r yields slice r.  Every rank yields
    ``len(self)`` batches.  After each batch, ``local_count`` and ``global_count`` hold this
    rank's and all ranks' sample counts of that step (for :meth:`DistributedOptimizer.step`).
    A last global batch with fewer samples than ranks is dropped (``dropped`` samples).
    rank/size: default the World's (given explicitly, e.g. to inspect other ranks' shards).
    min_steps=1: refuse (ValueError, naming the smallest data size for this rank count) data
    too small for a single step — fewer samples than ranks — which would train nothing.
    """

    def __init__(self, x, y=None, batch_size=64, shuffle=True, seed=0, transform=None, to_device=True,
                 world: World | None = None, rank: int | None = None, size: int | None = None,
                 min_steps: int = 0):
        w = world or get_world()
        self.rank = w.rank if rank is None else int(rank)
        self.size = w.size if size is None else int(size)
        if not 0 <= self.rank < self.size:
            raise ValueError(f"ShardedLoader: rank {self.rank} outside 0..{self.size - 1}")
        same_length(x, y)
        if int(batch_size) < self.size:
            raise ValueError(f"ShardedLoader: batch_size {batch_size} is the global batch and must be at "
                             f"least the number of processes ({self.size}), so that every rank gets a "
                             f"sample in every step; use batch_size >= {self.size}")
        if min_steps > 0 and len(x) < self.size:   # not one step: every rank would train on nothing
            raise ValueError(f"ShardedLoader: {len(x)} training sample(s) cannot be shared by {self.size} "
                             f"processes: every rank needs at least one sample per step, so {self.size} "
                             f"processes need at least {self.size} samples (one step; {batch_size} fill "
                             f"one global batch of batch_size {batch_size}); train on more data or on "
                             "fewer processes (mpiexec -n)")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, seed
        self.transform, self.to_device = transform, to_device
        self.epoch = 0
        self.local_count = self.global_count = 0

    @property
    def dropped(self) -> int:
        """Samples of each epoch left out: a final global batch smaller than the rank count."""
        rest = len(self.x) % self.batch_size
        return rest if rest < self.size else 0

    def __len__(self):
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest >= self.size else 0)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def global_batches(self, epoch):
        """The global batches of ``epoch`` as index arrays (the same on every rank)."""
        n = len(self.x)
        order = numpy.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else numpy.arange(n)
        return [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        rng = numpy.random.default_rng([self.seed, epoch, 1, self.rank])   # this rank's transforms
        for index in self.global_batches(epoch):
            m = len(index)
            mine = index[m * self.rank // self.size: m * (self.rank + 1) // self.size]
            self.local_count, self.global_count = len(mine), m
            xb = self.x[mine]
            yb = None if self.y is None else numpy.asarray(backend.to_numpy(self.y[mine]))   # y may be on a device
            if self.transform is not None:
                xb = self.transform(xb, rng)
            if self.to_device:
                xb = backend.asarray(xb, dtype=backend.default_dtype())
            yield xb, yb


# ---------------------------------------------------------------------------------------
# What tinyae.train.fit calls when distributed=...
# ---------------------------------------------------------------------------------------
class FitPlan:
    """The distributed parts of :func:`tinyae.train.fit`, gathered in one place.

    fit keeps its single-process shape and asks this object at the few points where N ranks
    differ from one: the loaders, the resume, the step, the reported losses, the callbacks,
    and who writes.
    """

    def __init__(self, distributed, model, optimizer, train, test, batch_size, seed):
        self.world = distributed if isinstance(distributed, World) else init()
        for name, data in (("train", train), ("test", test)):
            if data is not None and not (hasattr(data, "shape") and hasattr(data, "dtype")):
                raise DistributedError(f"fit(distributed=...): {name} must be an array (fit shards it over "
                                       f"the ranks itself), got {type(data).__name__}; for your own loader "
                                       "use distributed.ShardedLoader in a hand-written loop")
        self.model, self.seed = model, seed
        self.optimizer = (optimizer if isinstance(optimizer, DistributedOptimizer)
                          else DistributedOptimizer(optimizer, model.reduction, self.world))
        self.inner = self.optimizer.optimizer       # what checkpoints save and load
        self.train_loader = ShardedLoader(train, batch_size=batch_size, shuffle=True, seed=seed,
                                          world=self.world, min_steps=1)
        self.test = None if test is None else test[self.world.shard(len(test))]

    def describe(self) -> str:
        w, loader = self.world, self.train_loader
        local = loader.batch_size // w.size
        dropped = f"; {loader.dropped} samples per epoch dropped" if loader.dropped else ""
        return (f"distributed: {w.size} process{'es' if w.size != 1 else ''}, global batch {loader.batch_size} "
                f"(~{local} per rank), {len(loader)} steps per epoch{dropped}")

    def share_resume(self, history, start, note, say):
        """Rank 0 alone looked for and read the checkpoint (fit's own resume code); give every
        rank its history, epoch, parameters and optimizer state.  Returns (history, start, note)."""
        w = self.world
        records, start, note = w.bcast((history.records, start, note) if w.is_root else None)
        broadcast_parameters(self.model, world=w)
        broadcast_optimizer_state(self.inner, world=w)
        say(self.describe())
        before = records[-1].get("ranks", 1) if records else w.size
        if before != w.size:
            say(f"the checkpoint was written by {before} process(es), this run has {w.size}: re-sharded "
                f"(same data order and global batch {self.train_loader.batch_size}; only the noise of "
                "ranks > 0 differs)")
        return type(history)(records), start, note

    def root_only(self, fn):
        """``fn`` itself on rank 0; on the other ranks a no-op returning None (who writes files)."""
        return fn if self.world.is_root else (lambda *args, **kwargs: None)

    def start_epoch(self, epoch):
        seed_noise(self.model, self.seed, epoch, world=self.world)

    def step(self):
        loader = self.train_loader
        self.optimizer.step(count=loader.local_count, total=loader.global_count)

    def sum(self, values):
        """The element-wise sum of ``values`` (numbers) over the ranks, on every rank."""
        return self.world.sum(values)

    def evaluate(self, model, evaluate):
        """The test losses over all ranks' shards of the test set (``evaluate`` on each)."""
        n = len(self.test)
        local = evaluate(model, self.test) if n else {}
        keys = self.world.bcast(sorted(local) if self.world.is_root else None)
        summed = self.world.sum([n] + [n * local.get(k, 0.0) for k in keys])
        return {k: v / max(summed[0], 1) for k, v in zip(keys, summed[1:])}

    def runs(self, callback) -> bool:
        return self.world.is_root or getattr(callback, "all_ranks", False)

    def agree(self, stop: bool) -> bool:
        """Rank 0's decision to stop, on every rank."""
        return bool(self.world.bcast(stop))
