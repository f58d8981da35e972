"""The fixed choices of several commands' options, as enums: a typo is a usage error naming the valid values
before any run is loaded."""

from enum import Enum


class Split(str, Enum):
    train = "train"
    validation = "validation"
    test = "test"


class Checkpoint(str, Enum):
    best = "best"
    last = "last"


class BadSamplePolicy(str, Enum):
    error = "error"
    skip = "skip"


class IndexKind(str, Enum):
    auto = "auto"
    flat = "flat"
    ivf = "ivf"


class ExportFormat(str, Enum):
    hf = "hf"
    onnx = "onnx"


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"
