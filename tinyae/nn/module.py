"""Parameter, Module and Sequential: the contract every layer keeps.

* ``y = layer(x)`` runs :meth:`Module.forward`, which caches what backward needs.
* ``dx = layer.backward(dy)`` returns dL/dx and **adds** dL/dθ into every
  ``param.grad`` (so shared weights and repeated calls accumulate; call
  :meth:`Module.zero_grad` to clear).
* Parameter names follow PyTorch (``weight``, ``bias``; Sequential children
  "0", "1", …) so a converted PyTorch ``state_dict`` loads directly.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict

import numpy

from .. import backend
from .._checks import DTypeError


class Parameter:
    """A trainable array ``data`` with its gradient accumulator ``grad`` (same shape/dtype/device)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        if not hasattr(data, "dtype") or getattr(data.dtype, "kind", None) != "f":
            raise DTypeError(f"Parameter: data must be a float array (float32 or float64), got "
                             f"{getattr(data, 'dtype', type(data).__name__)}")
        xp = backend.get_array_module(data)
        self.data = data
        self.grad = xp.zeros_like(data)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def __repr__(self):
        return f"Parameter(shape={tuple(self.shape)}, dtype={self.dtype})"


class Module:
    """Base class of layers and models.

    Subclasses set Parameters and sub-Modules as attributes (registered in
    order, like PyTorch) and implement ``forward`` and ``backward``.

    ``needs_input_grad``: whether the caller wants dL/dx back from ``backward``.  True for
    every layer; a model sets it False on the first layers of its encoder, whose input is
    data (see :meth:`set_needs_input_grad`), and so does a :class:`Sequential` called on a
    batch marked as data (:func:`mark_as_data`; every DataLoader batch is).  A layer with
    parameters then skips the input gradient (for the 784-250-16-320-784 autoencoder that is
    14 % of a step's FLOPs) and its ``backward`` returns None.  Layers without parameters may
    ignore the flag.
    """

    needs_input_grad = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -----------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() first")
        params, modules = d["_parameters"], d["_modules"]
        if isinstance(value, (Parameter, Module)) or name in params or name in modules:
            params.pop(name, None)
            modules.pop(name, None)
            if isinstance(value, Parameter):
                params[name] = value
            elif isinstance(value, Module):
                modules[name] = value
        # anything else (a layer's cache: ``self.x = x`` on every forward) is a plain attribute
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- the contract -----------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *grads):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def set_needs_input_grad(self, flag: bool = True):
        """Say whether ``backward`` must return dL/dx (False: it may return None).  Returns self."""
        object.__setattr__(self, "needs_input_grad", bool(flag))
        return self

    # -- traversal ----------------------------------------------------------
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix=""):
        """Yield ("name.sub.weight", Parameter) pairs; a Parameter shared by two modules appears once."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    # -- modes ----------------------------------------------------------------
    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # -- state ------------------------------------------------------------
    def state_dict(self):
        """An ordered {name: NumPy array copy} of every parameter (host copies, safe to save)."""
        return OrderedDict((n, backend.to_numpy(p.data).copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state, strict: bool = True):
        """Copy arrays (NumPy, CuPy, or anything ``numpy.asarray`` takes, such as
        ``torch_tensor.numpy()``) into the parameters, checking names, shapes and values.

        Every value is checked before any is copied, so on an error the module is unchanged:
        a KeyError for missing/unexpected names (``strict``), a ValueError for a wrong shape
        or values that are NaN/inf or overflow the parameter's dtype, a TypeError for values
        that are not real numbers (strings, objects, complex numbers)."""
        where = f"{type(self).__name__}.load_state_dict"
        if not (hasattr(state, "keys") and hasattr(state, "__getitem__")):
            raise TypeError(f"{where}: expected a mapping of parameter names to arrays (what "
                            f"model.state_dict() returns), got {type(state).__name__}")
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state.keys() if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        staged = [(p, _converted(where, name, state[name], p)) for name, p in own.items() if name in state]
        for p, value in staged:
            p.data[...] = value
        return self

    def to(self, backend_name: str | None = None, dtype=None):
        """Move every parameter to ``backend_name`` ("numpy"/"cupy") and/or cast to ``dtype``.
        Gradients are reset to zero.  Returns ``self``."""
        if dtype is not None and numpy.dtype(dtype).kind != "f":
            raise DTypeError(f"{type(self).__name__}.to: dtype must be a float type (float32 or "
                             f"float64), got {numpy.dtype(dtype)}")
        for m in self.modules():
            for name, p in m._parameters.items():
                data = p.data
                if backend_name is not None:
                    data = backend.to_backend(data, backend_name)
                if dtype is not None:
                    data = data.astype(dtype)
                p.data = data
                p.grad = backend.get_array_module(data).zeros_like(data)
            m._moved()
        return self

    def _moved(self):
        """Hook for modules holding non-Parameter arrays (buffers) after ``to``."""

    def double(self):
        return self.to(dtype=numpy.float64)

    def float(self):
        return self.to(dtype=numpy.float32)

    # -- helpers for layers -------------------------------------------------
    def _check_input(self, x, ndim=None, shape_tail=None, what="input"):
        """Raise a ValueError naming this layer unless ``x`` is a float array of the right rank,
        trailing shape and dtype (the dtype of this layer's parameters, if it has any), on the
        parameters' device.  (Called on every forward: the happy path builds no strings.)"""
        try:
            dtype, shape = x.dtype, x.shape
        except AttributeError:
            raise DTypeError(f"{self!r} expected an array as {what}, got {type(x).__name__}") from None
        if dtype.kind != "f":
            raise DTypeError(f"{self!r} expected a floating-point {what} (float32 or float64), got dtype "
                             f"{dtype}; convert with x.astype('float32')")
        if ndim is not None and len(shape) != ndim:
            raise ValueError(f"{self!r} expected a {ndim}-D {what}, got shape {tuple(shape)}")
        if shape and not shape[0]:  # an empty batch: NaN means and reshape errors further on
            raise ValueError(f"{self!r} expected a non-empty batch as {what} (N >= 1 along axis 0), "
                             f"got shape {tuple(shape)}")
        if shape_tail is not None and tuple(shape[-len(shape_tail):]) != tuple(shape_tail):
            raise ValueError(f"{self!r} expected {what} of shape (N, {', '.join(map(str, shape_tail))}), "
                             f"got {tuple(shape)}")
        params = self.__dict__["_parameters"]
        if params:
            p = next(iter(params.values())).data
            if dtype != p.dtype:
                raise DTypeError(f"{self!r} expected {what} of dtype {p.dtype} (its parameters' dtype), got "
                                 f"{dtype}; cast the input or call .to(dtype={dtype.name!r}) on the model")
            if type(x) is not type(p) and backend.get_array_module(x) is not backend.get_array_module(p):
                raise ValueError(f"{self!r}: {what} and parameters live on different devices; move the "
                                 "input with tinyae.backend.asarray or the model with .to(...)")

    def _require_cache(self, attr):
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{self!r}: backward called before forward")

    def _check_dy(self, dy, shape, dtype):
        """Raise unless ``dy`` = dL/d(output) has the ``shape`` and ``dtype`` of the last forward's
        output (no silent broadcasting, no float64 gradient into a float32 layer).  Called on
        every backward: the happy path is two comparisons and builds no strings."""
        dy_dtype = getattr(dy, "dtype", None)
        if getattr(dy, "shape", None) != shape or dy_dtype is None or dy_dtype != dtype:
            _bad_dy(self, dy, tuple(shape), dtype)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        lines.append(")")
        return "\n".join(lines)


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse.  Children are named "0", "1", …

    **dL/dx of data is not computed.**  Called on a batch marked as data (every batch a
    :class:`tinyae.data.DataLoader` yields is; :func:`mark_as_data` marks your own), the
    Sequential tells its leading layers, up to the first one with parameters, that nobody
    needs the gradient of their input: that layer adds into its ``.grad`` as always but
    skips ``dx = dy · W`` and ``backward`` returns None.  This is PyTorch's
    ``requires_grad=False`` on a data tensor, decided here by where ``x`` came from.  On any
    other array (a layer's output, ``mu + eps * std``, noise added to a batch) the whole
    chain runs and ``backward`` returns dL/dx.  :meth:`set_needs_input_grad` overrides the
    rule in either direction, for good (gradient checks ask for True).
    """

    def __init__(self, *modules):
        super().__init__()
        object.__setattr__(self, "_input_grad_set", None)   # None: decided per call (see above)
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is {type(m).__name__}, not a Module")
            if any(m is earlier for earlier in modules[:i]):
                # each layer keeps the input of its last forward for backward: a second call
                # would overwrite what the first one's backward needs
                raise ValueError(f"Sequential: item {i} ({m!r}) is the same object as an earlier item; "
                                 "use a new layer (to share weights, share its Parameter, as TiedLinear does)")
            setattr(self, str(i), m)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        if isinstance(i, slice):  # keep the children's names, as PyTorch does ("2.weight" stays)
            out = Sequential()
            for name, m in list(self._modules.items())[i]:
                setattr(out, name, m)
            return out
        return list(self._modules.values())[i]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        if self._input_grad_set is None:            # nobody said: data gets no dL/dx
            wanted = not is_data(x)
            if wanted is not self.needs_input_grad:
                self._pass_on_input_grad(wanted)
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dy):
        for m in reversed(self._modules.values()):
            dy = m.backward(dy)
            if dy is None:  # a layer told that nobody before it needs its input gradient
                return None
        return dy

    def set_needs_input_grad(self, flag: bool = True):
        """Say for good whether ``backward`` returns dL/dx, whatever the input (the default
        decides per call: see the class docstring).  Passed on to the leading children, up to
        the first one with parameters: every child after that one must return its input
        gradient, which that one needs."""
        object.__setattr__(self, "_input_grad_set", bool(flag))
        return self._pass_on_input_grad(flag)

    def _pass_on_input_grad(self, flag):
        Module.set_needs_input_grad(self, flag)
        for m in self._modules.values():
            if isinstance(m, Sequential) and m._input_grad_set is None:
                m._pass_on_input_grad(flag)         # a nested Sequential keeps deciding per call
            else:
                m.set_needs_input_grad(flag)
            if next(m.named_parameters(), None) is not None:
                break
        return self


# Arrays marked as data: id -> a weak reference, so that a mark never keeps a batch alive and
# dies with it (a later array that reuses the id is not marked).
_data_marks = {}


def mark_as_data(x):
    """Mark array ``x`` as data (a batch of inputs, not learned): a :class:`Sequential` called
    on it, or on a reshaped view of it, computes no dL/dx (see Sequential).  Returns ``x``.
    DataLoader marks every batch it yields; call this for batches from your own loader."""
    key = id(x)
    try:
        ref = weakref.ref(x, lambda dead, key=key: _data_marks.get(key) is dead and _data_marks.pop(key))
    except TypeError:   # an array type without weak references: left unmarked (dL/dx is computed)
        return x
    _data_marks[key] = ref
    return x


def is_data(x) -> bool:
    """Whether ``x`` (or the array it is a view of) was marked with :func:`mark_as_data`."""
    for a in (x, getattr(x, "base", None)):
        ref = _data_marks.get(id(a)) if a is not None else None
        if ref is not None and ref() is a:
            return True
    return False


def _bad_dy(layer, dy, shape, dtype):
    expected = (f"{layer!r}.backward expected dy = dL/d(output) with its forward output's shape {shape} "
                f"and dtype {dtype}")
    if not (hasattr(dy, "shape") and hasattr(dy, "dtype")):
        raise DTypeError(f"{expected}, got {type(dy).__name__}")
    got = f"got shape {tuple(dy.shape)} and dtype {dy.dtype}"
    if tuple(dy.shape) != shape:
        raise ValueError(f"{expected}; {got}")
    raise DTypeError(f"{expected}; {got}" + (f"; cast with dy.astype('{dtype}')" if dy.dtype.kind in "fiub" else ""))


def _converted(where, name, value, p):
    """``value`` checked and converted to parameter ``p``'s dtype on its device (see load_state_dict)."""
    host = backend.get_array_module(value) is numpy
    if host:
        try:
            value = numpy.asarray(value)
        except (TypeError, ValueError) as exc:  # e.g. a ragged nested list
            raise TypeError(f"{where}: parameter {name!r}: the value does not convert to an array "
                            f"({exc}); expected an array of shape {tuple(p.shape)}") from None
    kind = value.dtype.kind
    if kind == "c":
        raise TypeError(f"{where}: parameter {name!r} holds complex values (dtype {value.dtype}); "
                        f"expected real numbers for a {p.dtype} parameter")
    if kind not in "biuf":
        if kind == "O":  # NumPy 1.x makes a ragged nested list an object array instead of raising
            raise TypeError(f"{where}: parameter {name!r} holds object values, not numbers (a ragged "
                            f"nested list?); expected an array of shape {tuple(p.shape)} convertible "
                            f"to {p.dtype}")
        raise TypeError(f"{where}: parameter {name!r} holds {value.dtype} values, not numbers; "
                        f"expected a real array of shape {tuple(p.shape)} convertible to {p.dtype}")
    shape = tuple(value.shape)
    if shape != tuple(p.shape):
        raise ValueError(f"{where}: parameter {name!r} has shape {tuple(p.shape)} but the state holds "
                         f"shape {shape}")
    xp = backend.get_array_module(p.data)
    with numpy.errstate(over="ignore", invalid="ignore"):
        if xp is numpy:
            out = backend.to_numpy(value).astype(p.dtype)
        else:
            out = xp.asarray(value, dtype=p.dtype)
    if kind == "f" and not bool(xp.isfinite(out).all()):
        source = backend.get_array_module(value)
        if bool(source.isfinite(value).all()):
            big = float(source.abs(value).max())
            raise ValueError(f"{where}: parameter {name!r} holds values up to {big:.3g} in magnitude, which "
                             f"overflow {p.dtype} (largest {float(numpy.finfo(p.dtype).max):.3g}); "
                             "convert the model with .double() or rescale the values")
        raise ValueError(f"{where}: parameter {name!r} holds NaN or infinite values; expected finite "
                         f"numbers (was the state saved from a model that diverged?)")
    return out
