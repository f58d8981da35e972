"""Rows → tensors: fit preprocessing on the training split, encode every cell once, apply the bad-sample policy.

An encoded split is a dict of column tensors; a batch is an index selection of it, so the training loop
never waits on decoding and the data order is just a permutation (which makes exact resume simple).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from plait.data.cache import CachedCells, CachedFeature, FeatureCache
from plait.data.columns import Column, is_missing
from plait.data.division import ALONE, Division
from plait.data.places import RowPlaces
from plait.data.shared_split import encoded_once
from plait.data.tally import CellTally
from plait.errors import BadSample, MissingValue, PlaitError
from plait.files import write_atomic
from plait.registry import FEATURES, TASKS
from plait.console import progress_bar

Tensors = dict[str, torch.Tensor]


@dataclass
class SkippedRow:
    row: int  # position in the table read (0-based)
    column: str
    reason: str
    file: str = ""  # the file the user opens to find the row, and where in it (`line 4`, `row 52`, `annotations[3]`)
    place: str = ""

    def to_json(self, split: str) -> dict:
        return {"split": split, "row": self.row, "file": self.file, "place": self.place, "column": self.column,
                "reason": self.reason}


SKIP_HINT = "set data.on_bad_sample: skip to leave such rows out"


@dataclass
class EncodedSplit:
    name: str
    rows: list[int]  # row numbers in the table (0-based, header excluded)
    inputs: dict[str, Tensors | CachedCells]
    targets: dict[str, Tensors]
    skipped: list[SkippedRow] = field(default_factory=list)
    read: int = 0  # rows read, before bad ones were skipped
    tallies: dict[str, CellTally] = field(default_factory=dict)  # per input: decoded, from cache, missing, bad
    row_info: dict[str, dict[str, list]] = field(default_factory=dict)  # per output: values its evaluation reads (TaskType.row_info)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, indices: torch.Tensor) -> dict[str, dict[str, Tensors]]:
        return {
            "inputs": {name: select(cells, indices) for name, cells in self.inputs.items()},
            "targets": {name: select(cells, indices) for name, cells in self.targets.items()},
        }


def select(cells: Tensors | CachedCells, indices: torch.Tensor) -> Tensors:
    """The rows `indices` of one column: held in memory, or read from the preprocessing cache."""
    if isinstance(cells, CachedCells):
        return cells.select(indices)
    return {key: values[indices] for key, values in cells.items()}


class Stacker:
    """Collects one column's encoded cells and stacks them a chunk at a time: a cell kept as its own tensor costs
    about a kilobyte besides its data, so holding a million small target cells until the end would cost a gigabyte.
    Chunks are joined at the end, zero-padded to the longest (as `stack` pads the cells of one list)."""

    CHUNK_ROWS = 2048

    def __init__(self, column):
        self.column = column
        self.by_chunk = not isinstance(column, CachedFeature)  # a cached column's cells are already just keys
        self.cells: list = []
        self.chunks: list[Tensors] = []

    def add(self, cell) -> None:
        self.cells.append(cell)
        if self.by_chunk and len(self.cells) == self.CHUNK_ROWS:
            self.chunks.append(self.column.stack(self.cells))
            self.cells = []

    def result(self, keep: list[int]):
        """The stacked cells of the rows at positions `keep`."""
        if not self.by_chunk:
            return self.column.stack([self.cells[i] for i in keep])
        if self.cells or not self.chunks:
            self.chunks.append(self.column.stack(self.cells))
        joined = join_stacks(self.chunks)
        if len(keep) == len(joined["present"]):
            return joined
        rows = torch.tensor(keep, dtype=torch.long)
        return {key: values[rows] for key, values in joined.items()}


def join_stacks(parts: list[Tensors]) -> Tensors:
    """Stacked chunks of one column → one, each field zero-padded to the largest shape among the chunks."""
    if len(parts) == 1:
        return parts[0]
    joined = {}
    for key in parts[0]:
        tensors = [part[key] for part in parts]
        shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
        padded = []
        for tensor in tensors:
            if list(tensor.shape[1:]) != shape:
                full = tensor.new_zeros(len(tensor), *shape)
                full[(slice(None), *(slice(0, size) for size in tensor.shape[1:]))] = tensor
                tensor = full
            padded.append(tensor)
        joined[key] = torch.cat(padded)
    return joined


class Preprocessor:
    """Every input's feature type and every output's task type, built from the config."""

    def __init__(self, config, base_dir: str):
        self.features = {spec.name: FEATURES.get_or_fail(spec.type)(spec, base_dir) for spec in config.inputs}
        self.tasks = {spec.name: TASKS.get_or_fail(spec.type)(spec, base_dir) for spec in config.outputs}

    @property
    def columns(self) -> dict[str, Column]:
        return {**self.features, **self.tasks}

    def required_columns(self, with_targets: bool = True) -> dict[str, str]:
        """Table column → who needs it (`input photo`), for naming a missing column."""
        needed = {c.spec.column: f"input {n}" for n, c in self.features.items()}
        if with_targets:
            needed.update({c.spec.column: f"output {n}" for n, c in self.tasks.items()})
            needed.update({c.spec.references: f"output {n} (references)" for n, c in self.tasks.items() if getattr(c.spec, "references", None)})
        return needed

    def fit(self, train: pd.DataFrame) -> None:
        for name, column in self.columns.items():
            values = [v for v in train[column.spec.column].tolist() if not is_missing(v)]
            if not values:
                raise PlaitError(f"column {column.spec.column!r} ({name}) has no values in the training split")
            try:
                column.fit(values)
            except BadSample as problem:
                raise PlaitError(f"{name}: {problem}") from None

    def state_dict(self) -> dict:
        return {name: column.state_dict() for name, column in self.columns.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, column in self.columns.items():
            column.load_state_dict(state[name])

    def encode(self, table: pd.DataFrame, split: str, places: RowPlaces | str, on_bad_sample: str = "error",
               row_numbers=None, with_targets: bool = True, cache: FeatureCache | None = None, workers: int = 1,
               skip_hint: str = SKIP_HINT, division: Division = ALONE) -> EncodedSplit:
        """Encode every cell (inputs only when `with_targets` is false, as for prediction). Under `error` the
        first bad cell stops with its file, line (or row) and column named, and `skip_hint`; under `skip` the row
        is left out and listed. With a `cache`, inputs that use it are read from it, decoded only on a miss (on
        `workers` threads), and stay on disk. Several processes filling one cache decode a `division` of the misses
        each; then the first of them encodes the rows, and the others map its in-memory columns (`encoded_once`)."""
        places = RowPlaces.of(places)
        row_numbers = list(range(len(table))) if row_numbers is None else list(row_numbers)
        columns = self.columns if with_targets else dict(self.features)
        if cache is not None:
            columns = {name: cache.wrap(c) if self.uses_cache(name) else c for name, c in columns.items()}
            for column in columns.values():
                if isinstance(column, CachedFeature) and (workers > 1 or division.shared):
                    column.prefetch([v for v in table[column.spec.column].tolist() if not is_missing(v)], workers, division)

        def encode_rows() -> EncodedSplit:
            return self._encode_rows(table, split, places, on_bad_sample, row_numbers, columns, with_targets, skip_hint)

        encoded = encoded_once(division, cache.folder, columns, encode_rows) if division.shared else encode_rows()
        if cache is not None:
            cache.save_stats()
        return encoded

    def _encode_rows(self, table, split, places, on_bad_sample, row_numbers, columns, with_targets, skip_hint):
        encoded = {name: Stacker(column) for name, column in columns.items()}
        tallies = {name: CellTally() for name in columns}  # targets too, though only the inputs' are shown
        bad: dict[int, SkippedRow] = {}
        records = table.to_dict("records")
        for position, record in enumerate(progress_bar(records, f"encoding {split}", total=len(records))):
            row = row_numbers[position]
            for name, column in columns.items():
                cell = self._encode_cell(column, name in self.tasks, record[column.spec.column], row, places,
                                         on_bad_sample, bad, tallies[name], skip_hint)
                encoded[name].add(cell)
        keep = [i for i, row in enumerate(row_numbers) if row not in bad]
        stacked = {name: stacker.result(keep) for name, stacker in encoded.items()}
        kept_rows = table.iloc[keep]
        return EncodedSplit(
            name=split,
            rows=[row_numbers[i] for i in keep],
            inputs={name: stacked[name] for name in self.features},
            targets={name: stacked[name] for name in self.tasks if name in stacked},
            skipped=sorted(bad.values(), key=lambda s: s.row),
            read=len(row_numbers),
            tallies={name: tallies[name] for name in self.features},
            row_info={name: task.row_info(kept_rows) for name, task in self.tasks.items()} if with_targets else {},
        )

    def uses_cache(self, name: str) -> bool:
        feature = self.features.get(name)
        if feature is None:
            return False  # targets are small and cheap: never cached
        return feature.cache_by_default if feature.spec.cache is None else feature.spec.cache

    @staticmethod
    def _encode_cell(column, is_target, value, row, places: RowPlaces, on_bad_sample, bad, tally: CellTally,
                     skip_hint: str = SKIP_HINT):
        try:
            if is_missing(value):
                return Preprocessor._missing(column, is_target, "empty cell", tally)
            try:
                cell = column.encode(value)
            except MissingValue as nothing:
                return Preprocessor._missing(column, is_target, str(nothing) or "no usable value", tally)
            if getattr(column, "last_from_cache", False):
                tally.from_cache += 1
            else:
                tally.decoded += 1
            return cell
        except BadSample as problem:
            tally.bad += 1
            if on_bad_sample == "error":
                raise PlaitError(f"{places.describe(row)}, column {column.spec.column!r}: {problem} ({skip_hint})") from None
            file, place = places.place(row)
            bad.setdefault(row, SkippedRow(row, column.spec.column, str(problem), file, place))
            return None

    @staticmethod
    def _missing(column, is_target: bool, reason: str, tally: CellTally):
        if is_target or column.spec.missing == "mask":
            tally.missing[reason] += 1
            return None  # a masked input, or a target left out of this output's loss
        raise BadSample(reason)


def write_skipped(splits: list[EncodedSplit], path: Path) -> int:
    """One JSON line per skipped row: split, row (position in the table read), file and place in it (`line 4`),
    column, reason. Returns the count; writes nothing when no row was skipped."""
    lines = [json.dumps(r.to_json(s.name)) for s in splits for r in s.skipped]
    if lines:
        write_atomic(path, "\n".join(lines) + "\n")
    else:
        Path(path).unlink(missing_ok=True)  # a list from an earlier run would speak of rows this one kept
    return len(lines)


def to_device(batch, device: torch.device):
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def load_batch(split: EncodedSplit, indices: torch.Tensor, tasks: dict, device: torch.device) -> dict:
    """The rows `indices` of a split on the device, each output's targets collated by its task (a caption's
    decoder input and shifted labels)."""
    batch = to_device(split.batch(indices), device)
    batch["targets"] = {name: tasks[name].collate(target) for name, target in batch["targets"].items()}
    return batch


def prepare_inputs(features: dict, inputs: dict, training: bool) -> dict:
    """The batched, on-device step of each feature (normalisation; augmentation when training). An input that
    arrives as a frozen encoder's cached output (`embedding`) is already past this step."""
    return {name: tensors if "embedding" in tensors else features[name].prepare(tensors, training)
            for name, tensors in inputs.items()}
