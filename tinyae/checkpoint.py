"""Checkpoints: one ``.npz`` file with everything needed to resume training bit for bit.

Contents (all plain arrays; strings are 0-d unicode arrays, so no pickle is involved):

    format            "tinyae-checkpoint/1"
    builder           the model's builder name ("" for a hand-assembled model)
    builder_kwargs    its keyword arguments, JSON
    param.<name>      every parameter, by its ``named_parameters`` name (host copies)
    optimizer         the optimizer's class name ("" if none was saved)
    optim.<key>       ``optimizer.state_dict()`` (step count, lr, hyperparameters, moments)
    epoch             the number of completed epochs
    history           the training history so far, JSON (a list of per-epoch dicts)
    rng               JSON {module name: numpy ``bit_generator.state``} of every module that
                      draws noise (the model's own rng is under "")
    meta              JSON: tinyae version, parameter dtype, backend
    settings          JSON: how :func:`tinyae.train.fit` was called (seed, batch size); optional

Writes are atomic: the file is written to a temporary file in the same folder and then
renamed over the target (``os.replace``), so a crash leaves either the old checkpoint or
the new one, never half of one.  The finished file gets the user's usual permissions
(0666 minus the umask), and the leftovers of a write that was killed are removed by
:func:`remove_orphans` (``fit`` runs it before training and says what it removed).

Reading checks every field: a file that is not a checkpoint, lacks a field or holds one
that does not parse raises :class:`CheckpointError` naming the file and the field.
"""
from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field

import numpy

from . import _files, backend

__all__ = ["CheckpointError", "Checkpoint", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "rng_states", "set_rng_states", "remove_orphans", "builder_changes", "RESUMABLE_CHANGES",
           "inspect_checkpoint"]

FORMAT = "tinyae-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the model/optimizer it is loaded into."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""
    model: object
    epoch: int
    history: list
    builder: str | None
    builder_kwargs: dict
    optimizer_state: dict = field(default_factory=dict)
    optimizer_class: str = ""
    meta: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)


def rng_states(model) -> dict:
    """{module name: bit_generator.state} of every generator the model's modules draw noise
    from (``Module.named_generators``)."""
    return {name: g.bit_generator.state for name, g in model.named_generators()}


def set_rng_states(model, states: dict):
    """Restore generator states saved by :func:`rng_states` (names must match)."""
    for name, state in states.items():
        _generator(model, name).bit_generator.state = state


def _generator(model, name):
    """The generator module ``name`` of ``model`` draws from, or a CheckpointError."""
    rng = dict(model.named_generators()).get(name)
    if not isinstance(rng, numpy.random.Generator):
        raise CheckpointError(f"checkpoint holds an RNG state for module {name!r}, which this model "
                              "does not have (different architecture?)")
    return rng


def _json_str(obj) -> numpy.ndarray:
    return numpy.array(json.dumps(obj))


def save_checkpoint(path, model, optimizer=None, epoch: int = 0, history=None, settings=None):
    """Write ``model`` (+ ``optimizer``) state, ``epoch``, ``history`` and the training
    ``settings`` (a JSON-able dict) to ``path`` atomically; return the path."""
    name, kwargs = model.builder if getattr(model, "builder", None) else ("", {})
    arrays = {
        "format": numpy.array(FORMAT),
        "builder": numpy.array(name),
        "builder_kwargs": _json_str(kwargs),
        "epoch": numpy.array(int(epoch)),
        "history": _json_str(list(history or [])),
        "rng": _json_str(rng_states(model)),
        "optimizer": numpy.array(type(optimizer).__name__ if optimizer is not None else ""),
        "settings": _json_str(dict(settings or {})),
    }
    params = model.state_dict()
    dtype = str(next(iter(params.values())).dtype) if params else ""
    arrays["meta"] = _json_str({"tinyae": _version(), "dtype": dtype, "backend": backend.current()})
    for k, v in params.items():
        arrays[f"param.{k}"] = v
    if optimizer is not None:
        for k, v in optimizer.state_dict().items():
            arrays[f"optim.{k}"] = numpy.asarray(v)
    path = os.fspath(path)
    return _files.atomic_write(path, lambda f: _files.savez(f, **arrays))


def remove_orphans(path) -> list:
    """Delete the temporary files a killed write of checkpoint ``path`` left; return their names."""
    return _files.remove_orphans(path)


def _version():
    from . import __version__
    return __version__


REQUIRED = ("format", "builder", "builder_kwargs", "epoch", "history", "rng", "optimizer", "meta")
_JSON_FIELDS = {"builder_kwargs": dict, "history": list, "rng": dict, "meta": dict, "settings": dict}
_METADATA = REQUIRED + ("settings",)
SMALL_FIELD = 64 << 20     # bytes: the most a metadata field (a name, a number, JSON) may declare
_OPTIM_SETTING = 1 << 16   # bytes: the most an optimizer setting (lr, step count, betas …) may declare


def _open(path):
    """The checkpoint as an open archive (``numpy.load``'s NpzFile): nothing read yet."""
    try:
        z = numpy.load(os.fspath(path), allow_pickle=False)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
                              "delete it or point to another file") from None
    if not hasattr(z, "zip"):
        raise CheckpointError(f"{path}: not a readable checkpoint (a single .npy array, not an .npz archive "
                              "of fields); delete it or point to another file")
    return z


def _declared(z, path, key):
    """(shape, dtype, bytes) that field ``key``'s .npy header declares, read without its data."""
    from numpy.lib import format as npy
    member = key + ".npy" if key + ".npy" in z.zip.namelist() else key
    try:
        info = z.zip.getinfo(member)
        with z.zip.open(member) as f:
            version = npy.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = npy.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
    except Exception as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} is not a readable array "
                              f"({type(exc).__name__}: {exc})") from None
    if dtype.hasobject:
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} holds Python objects (a pickle), "
                              "which tinyae never loads; delete the file or point to another")
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size < nbytes:
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} declares {dtype} data of shape "
                              f"{tuple(shape)} ({nbytes} bytes), but the archive holds {info.file_size} bytes "
                              "for it")
    return tuple(shape), dtype, nbytes


def _get(z, path, key, limit=None, shape=None):
    """Field ``key``, read only after its declared size (``limit`` bytes) and ``shape`` are checked."""
    declared, dtype, nbytes = _declared(z, path, key)
    if shape is not None and declared != tuple(shape):
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} declares shape {declared}, the "
                              f"model needs {tuple(shape)}")
    if limit is not None and nbytes > limit:
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} declares {dtype} data of shape "
                              f"{declared} ({_size(nbytes)}), more than such a field can hold "
                              f"({_size(limit)}); it was not read")
    try:
        return z[key]
    except Exception as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} cannot be read "
                              f"({type(exc).__name__}: {exc})") from None


def _size(nbytes) -> str:
    return f"{nbytes / 2**20:.1f} MiB" if nbytes >= 2**20 else f"{nbytes} bytes"


def _metadata(path):
    """(archive, {field: array}) with the metadata fields read (each at most SMALL_FIELD bytes)
    and the format tag and the required fields checked; the arrays are not read."""
    z = _open(path)
    try:
        files = set(z.files)
        raw = {k: _get(z, path, k, limit=SMALL_FIELD) for k in _METADATA if k in files}
        if str(raw.get("format", "")) != FORMAT:
            raise CheckpointError(f"{path}: not a tinyae checkpoint (format tag {raw.get('format')!r}, "
                                  f"expected {FORMAT!r})")
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise CheckpointError(f"{path}: damaged checkpoint: field {missing[0]!r} is missing"
                                  + (f" (and {', '.join(map(repr, missing[1:]))})" if missing[1:] else "")
                                  + f"; a {FORMAT} file holds {', '.join(REQUIRED)}")
    except BaseException:
        z.close()
        raise
    return z, raw


def read_checkpoint(path) -> dict:
    """The raw contents of a checkpoint as a dict of NumPy arrays.

    Checks the format tag and that every required field is present; raises
    :class:`CheckpointError` naming the file (and the field) otherwise.  A missing file
    raises ``FileNotFoundError``.  Every field is read, whatever its size (there is no model
    to compare the arrays with): :func:`load_checkpoint` and :func:`inspect_checkpoint` read
    only what they need, after checking each field's declared size.
    """
    z, raw = _metadata(path)
    with z:
        raw.update({k: _get(z, path, k) for k in z.files if k not in raw})
    return raw


def _field(raw, path, key):
    """Field ``key`` of a raw checkpoint, parsed (JSON fields, the epoch), or CheckpointError."""
    if key not in raw:
        if key == "settings":
            return {}                       # written by tinyae >= 0.1.1 only
        raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} is missing")
    value = raw[key]
    if key == "epoch":
        try:
            if numpy.asarray(value).dtype.kind not in "iuU" or numpy.asarray(value).ndim:
                raise TypeError(value)      # 2.5, True, [1, 2]: not an epoch count
            epoch = int(value)
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'epoch' should be a whole number, "
                                  f"found {value!r}") from None
        if epoch < 0:
            raise CheckpointError(f"{path}: damaged checkpoint: field 'epoch' is {epoch}, expected >= 0")
        return epoch
    if key in _JSON_FIELDS:
        want = _JSON_FIELDS[key]
        try:
            parsed = json.loads(str(value))
        except ValueError as exc:
            raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} is not valid JSON ({exc})") \
                from None
        if not isinstance(parsed, want):
            raise CheckpointError(f"{path}: damaged checkpoint: field {key!r} should hold a JSON "
                                  f"{'object' if want is dict else 'list'}, found {type(parsed).__name__}")
        return parsed
    return str(value)


def _whole(value, minimum) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


def _checked_metadata(raw, path) -> dict:
    """Every metadata field parsed and checked: {name, kwargs, meta, history, epoch, rng, settings}."""
    out = dict(name=str(raw["builder"]), kwargs=_field(raw, path, "builder_kwargs"), meta=_field(raw, path, "meta"),
               history=_field(raw, path, "history"), epoch=_field(raw, path, "epoch"), rng=_field(raw, path, "rng"),
               settings=_field(raw, path, "settings"))
    for i, record in enumerate(out["history"]):
        if not isinstance(record, dict):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'history' should hold one JSON object per "
                                  f"epoch, found {type(record).__name__} {record!r} at position {i}")
    wants = {"seed": (lambda v: _whole(v, 0), "a whole number >= 0"),
             "batch_size": (lambda v: _whole(v, 1), "a whole number >= 1"),
             "augment": (lambda v: isinstance(v, bool), "true or false")}
    for key, (ok, wanted) in wants.items():
        value = out["settings"].get(key)
        if value is not None and not ok(value):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'settings' holds {key} {value!r}, "
                                  f"expected {wanted}")
    for name, state in out["rng"].items():
        if not isinstance(state, dict) or not isinstance(state.get("bit_generator"), str):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'rng' holds {state!r} for module "
                                  f"{name!r}, not a NumPy bit generator state")
    return out


def _optimizer_settings(z, path) -> dict:
    """The optimizer's small fields (step count, lr, hyperparameters), checked; no moments."""
    state = {}
    for key in z.files:
        if key.startswith("optim.") and _declared(z, path, key)[2] <= _OPTIM_SETTING:
            state[key[len("optim."):]] = _get(z, path, key)
    _check_optimizer_values(path, state)
    return state


def _check_optimizer_values(path, state):
    """What an optimizer would believe: a finite lr > 0, a whole step count >= 0, finite
    moments and non-negative second moments (Adam's exp_avg_sq; a negative one wrecks the weights)."""
    for key, value in state.items():
        a = numpy.asarray(value)
        field_name = f"optim.{key}"
        if a.dtype.kind not in "biuf":
            raise CheckpointError(f"{path}: damaged checkpoint: field {field_name!r} holds {a.dtype} values, "
                                  "expected numbers")
        if key == "lr" and not (a.ndim == 0 and math.isfinite(float(a)) and float(a) > 0):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'optim.lr' is {a.tolist()!r}, expected a "
                                  "finite number > 0")
        if key == "step_count" and not (a.ndim == 0 and a.dtype.kind in "iu" and int(a) >= 0):
            raise CheckpointError(f"{path}: damaged checkpoint: field 'optim.step_count' is {a.tolist()!r}, "
                                  "expected a whole number >= 0")
        if key.startswith("state.") and a.size and not numpy.all(numpy.isfinite(a)):
            raise CheckpointError(f"{path}: damaged checkpoint: field {field_name!r} holds NaN or infinite "
                                  "values")
        if key.endswith("_sq") and a.size and float(a.min()) < 0:
            raise CheckpointError(f"{path}: damaged checkpoint: field {field_name!r} holds negative values "
                                  f"(down to {float(a.min()):g}); a running mean of squares is >= 0")


def inspect_checkpoint(path) -> Checkpoint:
    """Everything in a checkpoint but the model (``model`` is None): builder, epoch, history,
    settings, optimizer class and settings — read and checked, nothing built or loaded.
    ``optimizer_state`` holds the optimizer's small fields (step count, lr, hyperparameters),
    not its moments: no array the size of a parameter is read."""
    z, raw = _metadata(path)
    with z:
        m = _checked_metadata(raw, path)
        optim = _optimizer_settings(z, path)
    return Checkpoint(model=None, epoch=m["epoch"], history=m["history"], builder=m["name"] or None,
                      builder_kwargs=m["kwargs"], optimizer_state=optim, optimizer_class=str(raw["optimizer"]),
                      meta=m["meta"], settings=m["settings"])


def _describe(name, kwargs):
    return f"builder {name!r} with {kwargs}" if name else "a hand-assembled model (no builder)"


def load_checkpoint(path, model=None, optimizer=None) -> Checkpoint:
    """Load a checkpoint.

    model=None: rebuild the model from the stored builder name and arguments.
    model given: load into it, after checking that its parameters have exactly the
        checkpoint's names and shapes (a :class:`CheckpointError` names the first difference
        and both architectures otherwise).
    optimizer: if given, its state is restored too (it must be of the saved class).
    The model's RNG states are restored as well.  Returns a :class:`Checkpoint`.

    All or nothing: every field is checked — its declared size and shape against what the
    model needs before it is read (a small file cannot make tinyae decompress gigabytes),
    then its values — before the model or the optimizer is touched; if loading still fails,
    both are put back as they were.  A :class:`CheckpointError` names the file and the field.
    """
    z, raw = _metadata(path)
    with z:
        m = _checked_metadata(raw, path)
        name, kwargs, meta = m["name"], m["kwargs"], m["meta"]
        optim_class = str(raw["optimizer"])
        if optimizer is not None:
            if not optim_class:
                raise CheckpointError(f"{path}: holds no optimizer state")
            if optim_class != type(optimizer).__name__:
                raise CheckpointError(f"{path}: optimizer state is for {optim_class}, not "
                                      f"{type(optimizer).__name__}")
        if model is None:
            if not name:
                raise CheckpointError(f"{path}: the model was not made by a builder; create the model "
                                      "yourself and pass it as load_checkpoint(path, model)")
            from .models import build
            try:
                model = build(name, **kwargs)
            except (TypeError, ValueError, MemoryError) as exc:
                raise CheckpointError(f"{path}: cannot rebuild the model from fields 'builder' ({name!r}) and "
                                      f"'builder_kwargs' ({kwargs}): {exc}") from None
            xp_dtype = meta.get("dtype")
            if xp_dtype and xp_dtype != str(model.parameters()[0].dtype):
                try:
                    model.to(dtype=numpy.dtype(xp_dtype))
                except (TypeError, ValueError) as exc:
                    raise CheckpointError(f"{path}: damaged checkpoint: field 'meta' names dtype {xp_dtype!r} "
                                          f"({exc})") from None
        own = {n: tuple(p.shape) for n, p in model.named_parameters()}
        keys = {k[len("param."):]: k for k in z.files if k.startswith("param.")}
        _check_fits(path, {n: _declared(z, path, k)[0] for n, k in keys.items()}, model, name, kwargs)
        params = {n: _get(z, path, k, shape=own[n]) for n, k in keys.items()}
        # the optimizer's fields: none larger than the largest parameter, all together at most
        # what two float64 moments of every parameter take (plus its settings)
        largest = max([8 * math.prod(s) for s in own.values()] + [_OPTIM_SETTING])
        budget = 2 * 8 * sum(math.prod(s) for s in own.values()) + _OPTIM_SETTING
        okeys = [k for k in z.files if k.startswith("optim.")]
        declared = {k: _declared(z, path, k)[2] for k in okeys}
        if sum(declared.values()) > budget:
            raise CheckpointError(f"{path}: damaged checkpoint: the optimizer fields declare "
                                  f"{_size(sum(declared.values()))} in all, more than the state of this model's "
                                  f"optimizer can take ({_size(budget)}); nothing was read")
        optim_state = {k[len("optim."):]: _get(z, path, k, limit=largest) for k in okeys}
    _check_optimizer_values(path, optim_state)
    for module, state in m["rng"].items():
        rng = _generator(model, module)
        try:                       # tried on a scratch generator of the same kind first
            type(rng.bit_generator)().state = state
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: damaged checkpoint: field 'rng' holds a state for module {module!r} "
                                  f"that its {type(rng.bit_generator).__name__} generator refuses "
                                  f"({type(exc).__name__}: {exc})") from None
    _load_all_or_nothing(path, model, optimizer, params, m["rng"], optim_state)
    return Checkpoint(model=model, epoch=m["epoch"], history=m["history"], builder=name or None,
                      builder_kwargs=kwargs, optimizer_state=optim_state, optimizer_class=optim_class,
                      meta=meta, settings=m["settings"])


def _load_all_or_nothing(path, model, optimizer, params, rng, optim_state):
    """Parameters, noise generators and optimizer state into ``model`` and ``optimizer``; on a
    failure the ones already loaded are put back (the model and optimizer end as they were)."""
    saved_params, saved_rng = model.state_dict(), rng_states(model)
    saved_optim = optimizer.state_dict() if optimizer is not None else None
    stage = "parameters"
    try:
        model.load_state_dict(params)
        set_rng_states(model, rng)
        if optimizer is not None:
            stage = "optimizer"
            optimizer.load_state_dict(optim_state)
    except (ValueError, TypeError, KeyError) as exc:
        model.load_state_dict(saved_params)
        set_rng_states(model, saved_rng)
        if optimizer is not None:
            optimizer.load_state_dict(saved_optim)
        if isinstance(exc, CheckpointError):
            raise
        if stage == "optimizer" and isinstance(exc, ValueError):
            raise CheckpointError(f"{path}: optimizer state does not fit: {exc}") from None
        raise CheckpointError(f"{path}: damaged checkpoint: the {stage} cannot be loaded: {exc}; the model "
                              "and the optimizer are unchanged") from None


def _check_fits(path, params, model, name, kwargs):
    """``params``: {name: shape} (or arrays) of the checkpoint, against the model's parameters."""
    own = {n: tuple(p.shape) for n, p in model.named_parameters()}
    mine = model.builder if getattr(model, "builder", None) else ("", {})
    params = {n: tuple(getattr(v, "shape", v)) for n, v in params.items()}
    problems = []
    for n, shape in own.items():
        if n not in params:
            problems.append(f"parameter {n!r} {shape} is missing from the checkpoint")
        elif params[n] != shape:
            problems.append(f"parameter {n!r} has shape {params[n]} in the checkpoint "
                            f"but {shape} in the model")
    problems += [f"the checkpoint has parameter {n!r} {params[n]} that the model lacks"
                 for n in params if n not in own]
    if problems:
        more = f" (and {len(problems) - 3} more differences)" if len(problems) > 3 else ""
        raise CheckpointError(
            f"checkpoint {os.fspath(path)} does not fit this model: it was written for "
            f"{_describe(name, kwargs)}, the model is {_describe(*mine)}: " + "; ".join(problems[:3]) + more)


# Builder arguments that may change when training resumes (they weigh or perturb the loss,
# they do not change what the parameters mean); every other difference is refused.
RESUMABLE_CHANGES = ("beta", "lam", "penalty", "corruption", "sigma", "n_samples")
_IGNORED = ("seed",)        # only seeds the initial parameters and noise, both restored on resume


def builder_changes(path, model, name, kwargs) -> dict:
    """Compare the checkpoint's builder (``name``, ``kwargs``) with ``model.builder``.

    Returns {argument: (checkpoint value, model value)} for the differences listed in
    :data:`RESUMABLE_CHANGES`; raises :class:`CheckpointError` for any other difference
    (another builder, or arguments such as sizes, activations or the loss)."""
    mine = model.builder if getattr(model, "builder", None) else None
    if mine is None or not name:
        return {}
    my_name, my_kwargs = mine
    if my_name != name:
        raise CheckpointError(f"checkpoint {os.fspath(path)} was written for {_describe(name, kwargs)}, "
                              f"not for {_describe(my_name, my_kwargs)}: resume with the same model, "
                              "or write to another checkpoint (another --out)")
    full_old, full_new = _with_defaults(name, kwargs), _with_defaults(name, my_kwargs)
    changed, refused = {}, []
    for key in sorted(set(full_old) | set(full_new)):
        if key in _IGNORED:
            continue
        old, new = full_old.get(key, "(not given)"), full_new.get(key, "(not given)")
        if old == new:
            continue
        if key in RESUMABLE_CHANGES:
            changed[key] = (old, new)
        else:
            refused.append(f"{key}={old!r} in the checkpoint, {new!r} now")
    if refused:
        raise CheckpointError(f"checkpoint {os.fspath(path)} was written for {_describe(name, kwargs)}, "
                              f"which differs from this model in {'; '.join(refused)}: resume with the "
                              "same architecture, or write to another checkpoint (another --out)")
    return changed


def _with_defaults(name, kwargs) -> dict:
    """``kwargs`` of builder ``name`` with its defaults filled in, as JSON gives them back."""
    import inspect
    from .models import BUILDERS
    fn = BUILDERS.get(name)
    try:
        bound = inspect.signature(fn).bind_partial(**kwargs)
        bound.apply_defaults()
        return json.loads(json.dumps(bound.arguments))
    except (TypeError, ValueError):
        return dict(kwargs)
