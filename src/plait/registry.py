"""Name → class registries for feature types (inputs), encoders, task types (outputs) and fusions.

A modality is one class registered here by name; config schemas and model assembly look components up
in these tables, so adding one means adding a module and nothing else.
"""

from __future__ import annotations

import difflib
from typing import Callable, TypeVar

from plait.errors import PlaitError

T = TypeVar("T")


class Registry(dict):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def add(cls: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name
            self[name] = cls
            return cls

        return add

    def get_or_fail(self, name: str):
        if not self:
            raise RuntimeError(f"no {self.kind} is registered: `import plait.components` (plait.runs does) "
                               "before building a preprocessor or a model")
        if name not in self:
            near = difflib.get_close_matches(name, list(self), n=1)
            hint = f"; did you mean {near[0]}?" if near else f"; known: {', '.join(sorted(self))}"
            raise PlaitError(f"unknown {self.kind} {name!r}{hint}")
        return self[name]


FEATURES = Registry("feature type")
ENCODERS = Registry("encoder")
TASKS = Registry("task type")
FUSIONS = Registry("fusion")
