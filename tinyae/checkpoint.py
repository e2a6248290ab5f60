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
    gens = dict(model.named_generators())
    for name, state in states.items():
        rng = gens.get(name)
        if not isinstance(rng, numpy.random.Generator):
            raise CheckpointError(f"checkpoint holds an RNG state for module {name!r}, which this model "
                                  "does not have (different architecture?)")
        rng.bit_generator.state = state


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


def read_checkpoint(path) -> dict:
    """The raw contents of a checkpoint as a dict of NumPy arrays.

    Checks the format tag and that every required field is present; raises
    :class:`CheckpointError` naming the file (and the field) otherwise.  A missing file
    raises ``FileNotFoundError``.
    """
    try:
        with numpy.load(os.fspath(path), allow_pickle=False) as z:
            raw = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); "
                              "delete it or point to another file") from None
    if not isinstance(raw, dict) or str(raw.get("format", "")) != FORMAT:
        tag = raw.get("format") if isinstance(raw, dict) else None
        raise CheckpointError(f"{path}: not a tinyae checkpoint (format tag {tag!r}, "
                              f"expected {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(f"{path}: damaged checkpoint: field {missing[0]!r} is missing"
                              + (f" (and {', '.join(map(repr, missing[1:]))})" if missing[1:] else "")
                              + f"; a {FORMAT} file holds {', '.join(REQUIRED)}")
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


def inspect_checkpoint(path) -> Checkpoint:
    """Everything in a checkpoint but the model (``model`` is None): builder, epoch, history,
    settings, optimizer class and state — read and checked, nothing built or loaded."""
    raw = read_checkpoint(path)
    return Checkpoint(model=None, epoch=_field(raw, path, "epoch"), history=_field(raw, path, "history"),
                      builder=str(raw["builder"]) or None, builder_kwargs=_field(raw, path, "builder_kwargs"),
                      optimizer_state={k[len("optim."):]: v for k, v in raw.items() if k.startswith("optim.")},
                      optimizer_class=str(raw["optimizer"]), meta=_field(raw, path, "meta"),
                      settings=_field(raw, path, "settings"))


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
    """
    raw = read_checkpoint(path)
    name = str(raw["builder"])
    kwargs = _field(raw, path, "builder_kwargs")
    meta = _field(raw, path, "meta")
    history = _field(raw, path, "history")
    epoch = _field(raw, path, "epoch")
    rng = _field(raw, path, "rng")
    settings = _field(raw, path, "settings")
    if model is None:
        if not name:
            raise CheckpointError(f"{path}: the model was not made by a builder; create the model "
                                  "yourself and pass it as load_checkpoint(path, model)")
        from .models import build
        try:
            model = build(name, **kwargs)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot rebuild the model from fields 'builder' ({name!r}) and "
                                  f"'builder_kwargs' ({kwargs}): {exc}") from None
        xp_dtype = meta.get("dtype")
        if xp_dtype and xp_dtype != str(model.parameters()[0].dtype):
            model.to(dtype=numpy.dtype(xp_dtype))
    params = {k[len("param."):]: v for k, v in raw.items() if k.startswith("param.")}
    _check_fits(path, params, model, name, kwargs)
    model.load_state_dict(params)
    set_rng_states(model, rng)
    optim_state = {k[len("optim."):]: v for k, v in raw.items() if k.startswith("optim.")}
    optim_class = str(raw["optimizer"])
    if optimizer is not None:
        if not optim_class:
            raise CheckpointError(f"{path}: holds no optimizer state")
        if optim_class != type(optimizer).__name__:
            raise CheckpointError(f"{path}: optimizer state is for {optim_class}, not {type(optimizer).__name__}")
        try:
            optimizer.load_state_dict(optim_state)
        except ValueError as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit: {exc}") from None
    return Checkpoint(model=model, epoch=epoch, history=history, builder=name or None,
                      builder_kwargs=kwargs, optimizer_state=optim_state, optimizer_class=optim_class,
                      meta=meta, settings=settings)


def _check_fits(path, params, model, name, kwargs):
    own = {n: tuple(p.shape) for n, p in model.named_parameters()}
    mine = model.builder if getattr(model, "builder", None) else ("", {})
    problems = []
    for n, shape in own.items():
        if n not in params:
            problems.append(f"parameter {n!r} {shape} is missing from the checkpoint")
        elif tuple(params[n].shape) != shape:
            problems.append(f"parameter {n!r} has shape {tuple(params[n].shape)} in the checkpoint "
                            f"but {shape} in the model")
    problems += [f"the checkpoint has parameter {n!r} {tuple(params[n].shape)} that the model lacks"
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
