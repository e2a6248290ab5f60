"""A CuPy stand-in on the CPU (a developer tool): device discipline only, not a GPU.

Switched on by the environment variable ``TINYAE_FAKE_CUPY=1``, and only by it: then
``tinyae.backend.use("cupy")`` loads this module in place of CuPy, so the CuPy path
(``tests/test_gpu.py``, ``--backend cupy`` in every example) runs on a machine without a
GPU.  Its arrays are a wrapper around a NumPy array (not a NumPy subclass: ``numpy.asarray``
would silently unwrap a subclass), and they refuse what CuPy refuses, with CuPy's messages:

* ``numpy.asarray(c)`` / ``numpy.array(c)`` / anything reaching ``c.__array__``:
  ``TypeError: Implicit conversion to a NumPy array is not allowed. ...``;
* an operator or ufunc mixing a device array with a ``numpy.ndarray`` (0-d ones included):
  ``TypeError: Unsupported type <class 'numpy.ndarray'>``; Python and NumPy scalars are fine;
* ``c[:] = numpy_array`` (a basic index: ints, slices, ``...``): ``ValueError: non-scalar
  numpy.ndarray cannot be used for fill``; ``c[int_array] = numpy_array`` is accepted.

What works as on CuPy: ``float(c)``, ``int(c)``, ``c.item()``, ``f"{c:.3f}"``; reductions
return 0-d device arrays; ``c.get()`` and :func:`asnumpy` copy to the host; NumPy functions
called on device arrays dispatch here (``__array_ufunc__`` / ``__array_function__``).

Stricter than CuPy where CuPy's answer is silently wrong: an out-of-bounds index raises
(NumPy's ``IndexError``; CuPy wraps it around), and ``c[idx] = values`` with repeated
indices raises (CuPy stores one of the values, which one is undefined).

What a CPU cannot run:

* CUDA C.  :class:`ElementwiseKernel` accepts kernels made of plain arithmetic
  assignments (``m = b1 * m + (1 - b1) * g;``) and evaluates them statement by statement
  as NumPy array code in the kernel's type ``T`` — the fused Adam kernel's arithmetic and
  its argument order are checked this way; its compilation (NVRTC), and the GPU's rounding
  (fused multiply-adds), only on a GPU.  Anything else raises ``NotImplementedError``.
* NCCL: there is no ``cuda.nccl`` here, so ``tinyae.distributed`` sums device gradients
  through the host with MPI, as it does with a CuPy built without NCCL.
* Speed, memory, streams: the "device" is the CPU; ``cuda.Device().synchronize()`` returns
  at once and the memory pool reports zeros.

Nothing here is meant to be fast, and nothing outside tests and ``--backend cupy`` runs
with it.
"""
from __future__ import annotations

import ast
import re
import types

import numpy

DESCRIPTION = "CuPy stand-in on the CPU: device discipline only, not a GPU"
__version__ = "0 (stand-in)"
IS_STANDIN = True

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use .get() to construct a NumPy array explicitly.")
_SCALARS = (bool, int, float, complex, numpy.generic)


def _unsupported(value):
    return TypeError(f"Unsupported type {type(value)}")


# ---------------------------------------------------------------------------------------------
# Moving values in and out of the wrapper
# ---------------------------------------------------------------------------------------------
def _operand(value):
    """A ufunc/operator operand: a device array's data or a scalar; anything else is refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, _SCALARS):
        return value
    raise _unsupported(value)


def _device_only(value):
    """An argument of a device routine: device arrays unwrapped (inside lists and tuples too);
    a NumPy array anywhere is refused."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, numpy.ndarray):
        raise _unsupported(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_device_only(v) for v in value)
    return value


def _host_ok(value):
    """An argument that may come from the host (CuPy copies it over): everything unwrapped."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_host_ok(v) for v in value)
    return value


def _index(key):
    """An index: device arrays unwrapped; NumPy index arrays are accepted (CuPy copies them)."""
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    return key


def _wrap(result):
    """NumPy results back on the "device": arrays and NumPy scalars become device arrays (a
    reduction gives a 0-d array, as on CuPy); tuples and lists of them likewise."""
    if isinstance(result, numpy.ndarray):
        return ndarray._of(result)
    if isinstance(result, numpy.generic):
        return ndarray._of(numpy.asarray(result))
    if isinstance(result, (tuple, list)):
        return type(result)(_wrap(r) for r in result)
    return result


def _is_basic(key) -> bool:
    """True for a basic index (ints, slices, Ellipsis, None and tuples of them)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, numpy.integer))
               and not isinstance(k, (bool, numpy.bool_)) for k in parts)


# ---------------------------------------------------------------------------------------------
# The array
# ---------------------------------------------------------------------------------------------
_METHODS = frozenset("""all any argmax argmin argsort astype choose clip compress conj conjugate
copy cumprod cumsum diagonal dot flatten max mean min nonzero partition prod ptp put ravel repeat
reshape round sort squeeze std sum swapaxes take trace transpose var view""".split())
_ATTRIBUTES = frozenset("shape dtype ndim size itemsize nbytes strides flags".split())


class ndarray:  # noqa: N801  (CuPy's name)
    """A "device" array: a NumPy array kept behind CuPy's rules (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float, order="C"):
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, data: numpy.ndarray) -> "ndarray":
        out = object.__new__(cls)
        out._a = data
        return out

    # -- the refusals ------------------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "at":  # ufunc.at(a, indices, b): indices may come from the host
            args = [_operand(inputs[0]), _index(inputs[1])] + [_operand(x) for x in inputs[2:]]
        else:
            args = [_operand(x) for x in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_operand(o) if isinstance(o, (ndarray, numpy.ndarray)) else o for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        namespace = _NAMESPACES.get(func.__module__)
        if namespace is None:
            return NotImplemented
        try:
            ours = namespace(func.__name__) if callable(namespace) else getattr(namespace, func.__name__)
        except AttributeError:
            return NotImplemented
        return ours(*args, **kwargs)

    # -- back to the host, explicitly --------------------------------------------------------
    def get(self, stream=None, order="C", out=None):
        """A NumPy copy (the device→host transfer)."""
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        """Copy the NumPy array ``arr`` into this array (host→device), shapes equal."""
        if not isinstance(arr, numpy.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, got {type(arr)}")
        if arr.shape != self._a.shape:
            raise ValueError("Shape mismatch. Old shape: {}, new shape: {}".format(self._a.shape, arr.shape))
        self._a[...] = arr

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        return bool(self._a)

    def __format__(self, spec):
        return format(self._a, spec)

    def __repr__(self):
        return repr(self._a)

    def __str__(self):
        return str(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __copy__(self):
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        return ndarray._of(self._a.copy())

    def __reduce__(self):
        return (_rebuild, (self._a,))

    # -- attributes and methods -------------------------------------------------------------
    def __getattr__(self, name):
        if name in _ATTRIBUTES:
            return getattr(self._a, name)
        if name in _METHODS:
            method = getattr(self._a, name)

            def call(*args, **kwargs):
                return _wrap(method(*_device_only(args), **{k: _device_only(v) for k, v in kwargs.items()}))
            call.__name__ = name
            return call
        raise AttributeError(f"'cupy.ndarray' stand-in has no attribute {name!r}")

    @property
    def T(self):  # noqa: N802
        return ndarray._of(self._a.T)

    @property
    def real(self):
        return ndarray._of(self._a.real)

    @property
    def data(self):
        """CuPy's MemoryPointer, reduced to its address."""
        return types.SimpleNamespace(ptr=self._a.ctypes.data)

    @property
    def device(self):
        return cuda.Device(0)

    def fill(self, value):
        if isinstance(value, numpy.ndarray):
            if value.shape != ():
                raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
            value = value.item()
        self._a.fill(_operand(value) if isinstance(value, ndarray) else value)

    # -- indexing ---------------------------------------------------------------------------
    def __getitem__(self, key):
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, ndarray):
            value = value._a
        elif isinstance(value, numpy.ndarray):
            if _is_basic(key):     # CuPy fills a basic index with value: it must be a scalar
                if value.shape != ():
                    raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
                value = value.item()
        elif not isinstance(value, _SCALARS):
            raise _unsupported(value)
        key = _index(key)
        if not _is_basic(key) and numpy.ndim(value) > 0:
            hits = numpy.zeros(self._a.shape, numpy.int64)
            numpy.add.at(hits, key, 1)
            if hits.max(initial=0) > 1:
                raise ValueError("CuPy stand-in: c[idx] = values with repeated indices stores an undefined one "
                                 "of the values on CuPy; use cupyx.scatter_add or cupy.add.at to sum them")
        self._a[key] = value


def _rebuild(data):
    return ndarray._of(data)


def _binary(name, reflected=False):
    ufunc = getattr(numpy, name)

    def op(self, other):
        if not isinstance(other, (ndarray, numpy.ndarray, *_SCALARS)):
            return NotImplemented
        a, b = (_operand(other), self._a) if reflected else (self._a, _operand(other))
        return _wrap(ufunc(a, b))
    return op


def _inplace(name):
    ufunc = getattr(numpy, name)

    def op(self, other):
        if not isinstance(other, (ndarray, numpy.ndarray, *_SCALARS)):
            return NotImplemented
        ufunc(self._a, _operand(other), out=self._a)
        return self
    return op


def _unary(name):
    ufunc = getattr(numpy, name)

    def op(self):
        return _wrap(ufunc(self._a))
    return op


for _dunder, _ufunc in [("add", "add"), ("sub", "subtract"), ("mul", "multiply"), ("truediv", "true_divide"),
                        ("floordiv", "floor_divide"), ("mod", "remainder"), ("pow", "power"),
                        ("matmul", "matmul"), ("and", "bitwise_and"), ("or", "bitwise_or"),
                        ("xor", "bitwise_xor"), ("lshift", "left_shift"), ("rshift", "right_shift")]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))
    setattr(ndarray, f"__r{_dunder}__", _binary(_ufunc, reflected=True))
    setattr(ndarray, f"__i{_dunder}__", _inplace(_ufunc))
for _dunder, _ufunc in [("lt", "less"), ("le", "less_equal"), ("gt", "greater"), ("ge", "greater_equal"),
                        ("eq", "equal"), ("ne", "not_equal")]:
    setattr(ndarray, f"__{_dunder}__", _binary(_ufunc))
for _dunder, _ufunc in [("neg", "negative"), ("pos", "positive"), ("abs", "absolute"), ("invert", "invert")]:
    setattr(ndarray, f"__{_dunder}__", _unary(_ufunc))
ndarray.__hash__ = None


# ---------------------------------------------------------------------------------------------
# The namespace: ufuncs, routines, creation from host data, the way back
# ---------------------------------------------------------------------------------------------
class ufunc:  # noqa: N801  (CuPy's name)
    """A NumPy ufunc under CuPy's rules: device arrays and scalars only."""

    def __init__(self, np_ufunc):
        self._u = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, **kwargs):
        for a in args:
            if not isinstance(a, (ndarray, *_SCALARS)):
                raise _unsupported(a)
        out = kwargs.get("out")
        if out is not None and not isinstance(out, tuple):
            kwargs["out"] = (out,)      # as NumPy hands it to __array_ufunc__
        return ndarray.__array_ufunc__(None, self._u, "__call__", *args, **kwargs)

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise _unsupported(a)
        args = (a, indices) if b is None else (a, indices, b)
        return ndarray.__array_ufunc__(None, self._u, "at", *args)

    def reduce(self, a, *args, **kwargs):
        return ndarray.__array_ufunc__(None, self._u, "reduce", a, *args, **kwargs)

    def outer(self, a, b, **kwargs):
        return ndarray.__array_ufunc__(None, self._u, "outer", a, b, **kwargs)

    def __repr__(self):
        return f"<ufunc '{self.__name__}' (CuPy stand-in)>"


def _routine(np_func, host_args=False):
    """``np_func`` run on device arrays: results on the device; NumPy arrays refused unless
    ``host_args`` (functions CuPy lets take host data, e.g. ``result_type``)."""
    convert = _host_ok if host_args else _device_only

    def call(*args, **kwargs):
        return _wrap(np_func(*convert(args), **{k: convert(v) for k, v in kwargs.items()}))
    call.__name__ = np_func.__name__
    call.__doc__ = f"numpy.{np_func.__name__} on the CuPy stand-in's arrays."
    return call


def asarray(a, dtype=None, order=None, *, blocking=False):
    """``a`` on the device: device arrays as they are (cast if ``dtype`` differs); host data
    (NumPy arrays, lists, scalars) copied over."""
    if isinstance(a, ndarray):
        return a if dtype is None or numpy.dtype(dtype) == a.dtype else a.astype(dtype)
    return ndarray._of(numpy.array(_host_ok(a), dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    """A new device array from host data or a device array (copied unless ``copy=False``)."""
    if isinstance(obj, ndarray) and not copy and (dtype is None or numpy.dtype(dtype) == obj.dtype):
        return obj
    return ndarray._of(numpy.array(_host_ok(obj), dtype=dtype, order=order, copy=True, ndmin=ndmin))


asanyarray = asarray


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    return ndarray._of(numpy.ascontiguousarray(a._a, dtype=dtype))


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    """A NumPy array: a device array copied to the host; anything else through numpy.asarray."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    if out is not None:
        out[...] = a
        return out
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    """This module if any argument is a device array, else numpy."""
    import sys
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def _host_io(np_func):
    """cupy.save / savez / savez_compressed: every array copied to the host first."""
    def call(file, *args, **kwds):
        return np_func(file, *[asnumpy(a) for a in args], **{k: asnumpy(v) for k, v in kwds.items()})
    call.__name__ = np_func.__name__
    return call


save, savez, savez_compressed = (_host_io(f) for f in (numpy.save, numpy.savez, numpy.savez_compressed))


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _POOL


# NumPy names CuPy does not have (asked for, they raise AttributeError as on CuPy).
_ABSENT = frozenset("""errstate seterr geterr seterrcall set_printoptions get_printoptions printoptions
loadtxt savetxt genfromtxt fromfile fromregex memmap nditer ndenumerate ndindex einsum_path
ma rec char ctypeslib testing random fft polynomial lib emath""".split())
_HOST_ARGS = frozenset("result_type can_cast promote_types min_scalar_type common_type iinfo finfo dtype "
                       "ndim shape size isscalar issubdtype".split())
_CACHE: dict = {}


def __getattr__(name):
    """Every other NumPy name: ufuncs and routines wrapped to CuPy's rules; dtypes and
    constants as they are."""
    if name in _CACHE:
        return _CACHE[name]
    if name.startswith("__") or name in _ABSENT:
        raise AttributeError(f"module 'cupy' (stand-in) has no attribute {name!r}")
    value = getattr(numpy, name)   # AttributeError for names NumPy lacks
    if isinstance(value, numpy.ufunc):
        value = ufunc(value)
    elif isinstance(value, type) or not callable(value):
        pass                       # float32, dtype, inf, pi, newaxis, ...
    elif isinstance(value, types.ModuleType):
        raise AttributeError(f"module 'cupy' (stand-in) has no attribute {name!r}")
    else:
        value = _routine(value, host_args=name in _HOST_ARGS)
    _CACHE[name] = value
    return value


linalg = types.SimpleNamespace(**{n: _routine(getattr(numpy.linalg, n)) for n in
                                  ("norm", "svd", "qr", "eigh", "inv", "solve", "det", "slogdet", "cholesky", "lstsq",
                                   "pinv", "matrix_rank", "eigvalsh")})
linalg.LinAlgError = numpy.linalg.LinAlgError
_NAMESPACES = {"numpy": lambda name: globals()[name] if name in globals() else __getattr__(name),
               "numpy.linalg": linalg}


# ---------------------------------------------------------------------------------------------
# cupy.cuda and cupyx
# ---------------------------------------------------------------------------------------------
class _Stream:
    ptr = 0
    null = None

    def synchronize(self):
        pass


class _Event:
    """cupy.cuda.Event: records the host clock (nothing is queued, so nothing to wait for)."""

    def __init__(self, *args, **kwargs):
        self.t = None

    def record(self, stream=None):
        import time
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _Device:
    """cupy.cuda.Device: one device, id 0; ``synchronize`` returns at once (no queue)."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def use(self):
        if self.id != 0:
            raise cuda.runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: the stand-in has one device, not {self.id}")
        return self

    def synchronize(self):
        pass

    def __enter__(self):
        return self.use()

    def __exit__(self, *exc):
        return False

    def __repr__(self):
        return f"<CUDA Device {self.id} (CuPy stand-in)>"


class _CUDARuntimeError(RuntimeError):
    pass


def _get_device_properties(device_id):
    _Device(device_id).use()
    return {"name": b"CuPy stand-in (CPU)", "totalGlobalMem": 0, "multiProcessorCount": 0, "major": 0, "minor": 0}


def _get_elapsed_time(start, end):
    return (end.t - start.t) * 1e3


cuda = types.SimpleNamespace(
    Device=_Device, Event=_Event, Stream=_Stream,
    get_current_stream=lambda device=None: _Stream(),
    get_elapsed_time=_get_elapsed_time,
    is_available=lambda: True,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDeviceProperties=_get_device_properties,
                                  getDevice=lambda: 0, CUDARuntimeError=_CUDARuntimeError,
                                  runtimeGetVersion=lambda: 0, driverGetVersion=lambda: 0),
)


def _scatter_add(a, slices, value):
    """cupyx.scatter_add: ``a[slices] += value`` with repeated indices summed."""
    if not isinstance(a, ndarray):
        raise _unsupported(a)
    numpy.add.at(a._a, _index(slices), _host_ok(value))


cupyx = types.SimpleNamespace(scatter_add=_scatter_add)


# ---------------------------------------------------------------------------------------------
# ElementwiseKernel: plain arithmetic only, as array code
# ---------------------------------------------------------------------------------------------
_FUNCTIONS = {"sqrt": numpy.sqrt, "exp": numpy.exp, "log": numpy.log, "log1p": numpy.log1p, "tanh": numpy.tanh,
              "fabs": numpy.abs, "abs": numpy.abs, "max": numpy.maximum, "min": numpy.minimum,
              "fmax": numpy.maximum, "fmin": numpy.minimum}
_STATEMENT = re.compile(r"^([A-Za-z_]\w*)\s*([-+*/]?=)\s*(.+)$", re.S)
_ALLOWED_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, ast.Constant,
                  ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


class ElementwiseKernel:
    """cupy.ElementwiseKernel for kernels of plain arithmetic assignments, run as NumPy array
    code in the kernel's type; anything else (CUDA C control flow, indexing, ``raw``
    arguments, literals that C reads as double) raises NotImplementedError: it needs a GPU."""

    def __init__(self, in_params, out_params, operation, name="kernel", **kwargs):
        self.name = name
        self.in_params = self._params(in_params)
        self.out_params = self._params(out_params)
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        outs = {n for _, n in self.out_params}
        names = {n for _, n in self.in_params} | outs
        body = re.sub(r"//[^\n]*|/\*.*?\*/", "", operation, flags=re.S)
        self.statements = []
        for text in filter(None, (s.strip() for s in body.split(";"))):
            m = _STATEMENT.match(text)
            if not m or m.group(1) not in outs:
                self._refuse(f"statement {text!r} is not an assignment to an output")
            tree = ast.parse(m.group(3), mode="eval")
            for node in ast.walk(tree):
                if not isinstance(node, _ALLOWED_NODES):
                    self._refuse(f"{type(node).__name__} in {text!r}")
                if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCTIONS:
                    self._refuse(f"unknown name {node.id!r} in {text!r}")
                if isinstance(node, ast.Constant) and not isinstance(node.value, int):
                    self._refuse(f"literal {node.value!r} in {text!r} (C reads it as double)")
                if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
                    self._refuse(f"call in {text!r}")
            self.statements.append((m.group(1), m.group(2), compile(tree, f"<{name}>", "eval")))

    def _refuse(self, what):
        raise NotImplementedError(f"ElementwiseKernel {self.name!r}: {what}: the CuPy stand-in runs only plain "
                                  "arithmetic assignments; this kernel needs CUDA (a real GPU)")

    def _params(self, text):
        params = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            words = part.split()
            if len(words) != 2:
                self._refuse(f"parameter {part!r}")
            params.append((words[0], words[1]))
        return params

    def __call__(self, *args, **kwargs):
        if len(args) not in (self.nin, self.nin + self.nout):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        params = self.in_params + self.out_params
        types_ = {}
        for (typ, pname), a in zip(params, args):
            if isinstance(a, ndarray):
                dtype = a.dtype
            elif isinstance(a, _SCALARS):
                continue
            else:
                raise _unsupported(a)
            if len(typ) == 1 and typ.isupper():
                if types_.setdefault(typ, dtype) != dtype:
                    raise TypeError(f"Type is mismatched. {pname} {typ} {dtype} {types_[typ]}")
            elif numpy.dtype(typ) != dtype:
                raise TypeError(f"Type is mismatched. {pname} {typ} {dtype}")
        env = {}
        for (typ, pname), a in zip(params, args):
            dtype = types_.get(typ) if len(typ) == 1 and typ.isupper() else numpy.dtype(typ)
            if dtype is None:
                self._refuse(f"type {typ} of {pname} is given by scalars only")
            env[pname] = a._a if isinstance(a, ndarray) else dtype.type(a)
        if len(args) == self.nin:   # outputs allocated, in the broadcast shape of the inputs
            shape = numpy.broadcast_shapes(*(numpy.shape(v) for v in env.values()))
            for typ, pname in self.out_params:
                env[pname] = numpy.empty(shape, dtype=types_.get(typ) or numpy.dtype(typ))
        env.update(_FUNCTIONS)
        for target, op, code in self.statements:
            value = eval(code, {"__builtins__": {}}, env)  # noqa: S307  (expressions checked above)
            out = env[target]
            if op == "=":
                out[...] = value
            else:
                {"+=": numpy.add, "-=": numpy.subtract, "*=": numpy.multiply, "/=": numpy.true_divide}[op](
                    out, value, out=out, casting="same_kind")
        outs = [ndarray._of(env[n]) if len(args) == self.nin else args[self.nin + i]
                for i, (_, n) in enumerate(self.out_params)]
        return outs[0] if len(outs) == 1 else tuple(outs)
