"""Parameter, Module and Sequential: the contract every layer keeps.

* ``y = layer(x)`` runs :meth:`Module.forward`, which caches what backward needs.
* ``dx = layer.backward(dy)`` returns dL/dx and **adds** dL/dθ into every
  ``param.grad`` (so shared weights and repeated calls accumulate; call
  :meth:`Module.zero_grad` to clear).
* ``layer.backward(dy, need_dx=False)`` still adds every dL/dθ, but skips dL/dx and
  returns None: the caller says so when the layer's input is data, which nobody
  differentiates (``encoder.backward(dh, need_dx=False)  # x is data``).
* A layer keeps the cache of its *last* forward: ``forward(x1)``, ``forward(x2)``,
  ``backward(dy1)`` differentiates at x2 (a dy of the wrong shape is refused).
* Parameter names follow PyTorch (``weight``, ``bias``; Sequential children
  "0", "1", …) so a converted PyTorch ``state_dict`` loads directly.

The checks a layer runs on its input and its dy (``_check_input``, ``_check_dy``) are one
call each; their bodies live in :mod:`tinyae._checks`.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy

from .. import _checks, backend


class Parameter:
    """A trainable array ``data`` with its gradient accumulator ``grad`` (same shape/dtype/device)."""

    __slots__ = ("data", "grad")

    def __init__(self, data):
        _checks.parameter_data(data)
        self.data = data
        self.grad = backend.get_array_module(data).zeros_like(data)

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
    order, like PyTorch) and implement ``forward(x)`` and ``backward(dy, need_dx=True)``.

    ``need_dx``: whether the caller wants dL/dx back.  With False a layer still adds its
    parameter gradients but returns None; a layer with parameters then skips a product (for
    the 784-250-16-320-784 autoencoder's first layer that is 14 % of a step's FLOPs).
    """

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

    def backward(self, dy, need_dx=True):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

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

    def generator(self):
        """The numpy Generator this module draws its own noise from (Dropout's masks, a VAE's
        ε), or None.  Checkpoints save its state; under MPI each rank reseeds it."""
        return None

    def named_generators(self):
        """Yield ("name.sub", Generator) for every module of this one that draws noise."""
        for name, m in self.named_modules():
            g = m.generator()
            if g is not None:
                yield name, g

    def _has_parameters(self) -> bool:
        return bool(self._parameters) or any(m._has_parameters() for m in self._modules.values())

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
        staged = [(p, _checks.state_value(where, name, state[name], p)) for name, p in own.items() if name in state]
        for p, value in staged:
            p.data[...] = value
        return self

    def to(self, backend_name: str | None = None, dtype=None):
        """Move every parameter to ``backend_name`` ("numpy"/"cupy") and/or cast to ``dtype``.
        Gradients are reset to zero.  Returns ``self``."""
        if dtype is not None:
            _checks.float_dtype(dtype, f"{type(self).__name__}.to")
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

    # -- the checks a layer opens its forward/backward with (bodies in tinyae/_checks.py) --
    def _check_input(self, x, ndim=None, shape_tail=None, what="input"):
        """Raise a clear error naming this layer unless ``x`` is a float array of rank ``ndim``,
        trailing shape ``shape_tail``, and this layer's parameters' dtype and device."""
        _checks.layer_input(self, x, ndim, shape_tail, what)

    def _require_cache(self, attr):
        """Raise unless forward has filled the cache ``attr`` (backward before forward)."""
        if getattr(self, attr, None) is None:
            _checks.forward_ran(self, attr)

    def _check_dy(self, dy, shape, dtype):
        """Raise unless ``dy`` has the ``shape`` and ``dtype`` of the last forward's output."""
        if getattr(dy, "shape", None) != shape or getattr(dy, "dtype", None) != dtype:
            _checks.layer_dy(self, dy, shape, dtype)

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

    ``backward(dy, need_dx=False)`` (the input is data) skips dL/dx where nobody needs it:
    in the layers up to and including the first one with parameters.  Every layer after
    that one must return its input gradient, which the earlier parameters need.
    """

    def __init__(self, *modules):
        super().__init__()
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
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dy, need_dx=True):
        layers = list(self._modules.values())
        first = 0 if need_dx else next((i for i, m in enumerate(layers) if m._has_parameters()), len(layers))
        for i in reversed(range(len(layers))):
            dy = layers[i].backward(dy, need_dx=need_dx or i > first)   # i > first: layer `first` needs it
            if dy is None:
                return None
        return dy
