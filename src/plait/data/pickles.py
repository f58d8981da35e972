"""Pickles loaded without trusting them: only plain containers, numbers, strings, bytes and NumPy arrays come
out, and nothing in the file runs code.

An ordinary unpickler calls whatever function the file names, which is how a pickle runs code. This one answers
names from a fixed table (`SafeUnpickler.allowed`) and refuses every other one before any module is imported.
That alone is not enough for NumPy: a pickled dtype carries a raw state (`dtype.__setstate__`) that may, for
instance, clear the flag saying its items are Python objects, after which an array built over plain bytes would
treat those bytes as object pointers. So every dtype is built fresh, its state is tried on a copy and must match
the dtype NumPy itself makes from the same type string, and a state may only be set (the BUILD opcode) on a
dtype or array that was just made and not used yet. Structured dtypes, out-of-band buffers, persistent ids,
pandas objects and any other class or function are refused, naming the file.

Pickles are read by Python's own unpickler class (`pickle._Unpickler`) because only it lets BUILD be checked;
it takes a few times the C unpickler's time on pickles of many small objects, and the same on large arrays.
"""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np

from plait.errors import PlaitError

try:  # NumPy 2 moved its internals to numpy._core; pickles written by NumPy 1.x still name numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # NumPy 1.x
    from numpy.core import multiarray as _multiarray

# the built-in types a pickle names (the others have opcodes of their own)
PLAIN_TYPES = {"set": set, "frozenset": frozenset, "complex": complex, "bytes": bytes, "bytearray": bytearray}
NDARRAY = object()  # stands in for numpy.ndarray, which is only ever an argument of _reconstruct


class SafeUnpickler(pickle._Unpickler):
    """`find_class` answers from a fixed table; BUILD is checked (see the module's docstring)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source
        self.fresh: dict[int, object] = {}  # dtypes and arrays made here whose state may still be set, by id
        self.allowed = {("collections", "OrderedDict"): collections.OrderedDict,
                        ("_codecs", "encode"): self.latin1,  # how protocols 0-2 write bytes
                        ("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): self.dtype}
        for module in ("builtins", "__builtin__"):
            self.allowed.update({(module, name): kind for name, kind in PLAIN_TYPES.items()})
        numpy_internals = {("multiarray", "_reconstruct"): self.reconstruct, ("multiarray", "scalar"): self.scalar,
                           ("numeric", "_frombuffer"): self.frombuffer}
        for package in ("numpy.core", "numpy._core"):  # as NumPy 1.x and 2.x name them
            self.allowed.update({(f"{package}.{module}", name): call for (module, name), call in numpy_internals.items()})

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            pandas = module.split(".")[0] == "pandas"
            hint = "; save a DataFrame as parquet (data.format: parquet) instead" if pandas else ""
            raise self.refuse(f"to unpickle {module}.{name}", hint)
        return self.allowed[(module, name)]

    def persistent_load(self, pid):
        raise self.refuse("a persistent id")

    def refuse(self, what: str, hint: str = "") -> PlaitError:
        return PlaitError(f"{self.source}: refusing {what}: plait only loads plain containers, numbers, strings and "
                          f"NumPy arrays from pickles{hint}")

    # the callables a pickle may name: each checks its arguments and marks the dtypes and arrays it is given as used

    def made(self, value):
        self.fresh[id(value)] = value
        return value

    def use(self, *arguments) -> None:
        for argument in arguments:
            self.fresh.pop(id(argument), None)
            if isinstance(argument, tuple):
                self.use(*argument)

    def plain(self, dtype: np.dtype) -> np.dtype:
        if dtype.fields is not None or dtype.subdtype is not None:
            raise self.refuse(f"the structured NumPy dtype {dtype}", "; save structured arrays with numpy.save instead")
        return dtype

    def dtype(self, spec, align=False, copy=True):
        if not isinstance(spec, str):
            raise self.refuse(f"a NumPy dtype made from a {type(spec).__name__}")
        return self.made(self.plain(np.dtype(spec, bool(align), True)))  # always a copy, never NumPy's own

    def reconstruct(self, subtype, shape, dtype):
        if subtype is not NDARRAY:
            raise self.refuse(f"an array of type {type(subtype).__name__}")
        if shape != (0,):  # NumPy makes an empty array and then sets its state; a larger one would be uninitialised
            raise self.refuse(f"an array of shape {shape!r} without its data")
        self.use(shape, dtype)
        descr = self.plain(dtype if isinstance(dtype, np.dtype) else np.dtype(dtype))
        return self.made(_multiarray._reconstruct(np.ndarray, shape, descr))

    def scalar(self, dtype, *value):
        if not isinstance(dtype, np.dtype):
            raise self.refuse(f"a NumPy scalar of dtype {type(dtype).__name__}")
        self.use(dtype, *value)
        return _multiarray.scalar(self.plain(dtype), *value)

    def frombuffer(self, buffer, dtype, shape, order, axis_order=None):
        if not isinstance(buffer, (bytes, bytearray)) or not isinstance(dtype, np.dtype):
            raise self.refuse(f"an array over a {type(buffer).__name__}")
        self.use(buffer, dtype, shape)
        array = np.frombuffer(buffer, dtype=self.plain(dtype))  # NumPy refuses object dtypes over raw bytes
        if order == "K" and axis_order is not None:
            return array.reshape(shape, order="C").transpose(axis_order)
        return array.reshape(shape, order=order)

    def latin1(self, text, encoding):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise self.refuse(f"_codecs.encode with {encoding!r}")
        return text.encode("latin1")

    # opcodes that are checked or refused

    def load_build(self):
        state, target = self.stack[-1], self.stack[-2]
        if self.fresh.pop(id(target), None) is None:
            raise self.refuse(f"setting the state of a {type(target).__name__} that is not new")
        if isinstance(target, np.dtype):
            trial = np.dtype(target, False, True)
            trial.__setstate__(state)
            canonical = np.dtype(self.plain(trial).str)
            sound = (trial.num, trial.itemsize, trial.alignment, trial.flags, trial.hasobject)
            if sound != (canonical.num, canonical.itemsize, canonical.alignment, canonical.flags, canonical.hasobject):
                raise self.refuse(f"a NumPy dtype state that does not match {canonical}")
        else:
            self.use(state)
        super().load_build()

    def load_next_buffer(self):
        raise self.refuse("an out-of-band buffer")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.NEXT_BUFFER[0]] = load_next_buffer
    dispatch[pickle.READONLY_BUFFER[0]] = load_next_buffer


def safe_load_pickle(handle_or_bytes, source: str):
    """The object in a pickle (an open binary file or its bytes); `source` names it in errors."""
    handle = io.BytesIO(handle_or_bytes) if isinstance(handle_or_bytes, (bytes, bytearray, memoryview)) else handle_or_bytes
    try:
        return SafeUnpickler(handle, source).load()
    except PlaitError:
        raise
    except Exception as error:  # a corrupt or hostile stream can fail in many ways; each is one clear message
        raise PlaitError(f"{source}: not a readable pickle ({type(error).__name__}: {error})") from None
