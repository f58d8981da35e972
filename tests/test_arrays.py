"""Arrays from files and the array table formats: the restricted unpickler refuses anything that could run code,
accepts what NumPy and plain Python write; `npy` folders stay memory-mapped; pickles give rows or columns."""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import struct

import fsspec
import numpy as np
import pandas as pd
import pytest

from plait.config import SplitConfig
from plait.data.arrays import load_array_file
from plait.data.pickles import safe_load_pickle
from plait.data.tables import assign_splits, read_table
from plait.errors import PlaitError


class RunsCode:
    """Unpickling this with an ordinary unpickler calls `function(*arguments)`."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


# hand-written pickle streams (protocol 3 opcodes), for what no pickler writes on its own

def name(module: str, attribute: str) -> bytes:
    return b"c" + module.encode() + b"\n" + attribute.encode() + b"\n"


def text(value: str) -> bytes:
    return b"X" + struct.pack("<I", len(value.encode())) + value.encode()


def dtype_with_flags(spec: str, flags: int) -> bytes:
    """numpy.dtype(spec) given the state (version 3, '|', no fields, flags): what dtype.__setstate__ accepts."""
    state = b"(K\x03" + text("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + b"J" + struct.pack("<i", flags) + b"t"
    return name("numpy", "dtype") + text(spec) + b"\x89\x88\x87R" + state + b"b"


def test_a_pickle_that_would_run_a_command_is_refused_and_the_command_never_runs(tmp_path):
    marker = tmp_path / "MARKER"
    for payload in (RunsCode(os.system, f"touch {marker}"),
                    RunsCode(builtins.eval, f"open({str(marker)!r}, 'w')"),
                    {"nested": [RunsCode(builtins.exec, f"open({str(marker)!r}, 'w')")]}):
        for protocol in (0, 2, 5):
            with pytest.raises(PlaitError, match=r"evil\.pkl: refusing to unpickle (posix|os|builtins|__builtin__)\.(system|eval|exec)"):
                safe_load_pickle(pickle.dumps(payload, protocol=protocol), "evil.pkl")
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(RunsCode(os.system, f"touch {marker}")))
    with pytest.raises(PlaitError, match=f"{path}: refusing to unpickle"):
        load_array_file(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("stream, refused", [
    (b"\x80\x03" + name("__builtin__", "getattr") + b".", "__builtin__.getattr"),
    (b"\x80\x04\x8c\x05numpy\x8c\x11ndarray.__class__\x93.", r"numpy\.ndarray\.__class__"),  # a dotted name walks attributes
    (b"\x80\x03" + name("copyreg", "_reconstructor") + b".", "copyreg._reconstructor"),
    (b"\x80\x03" + text("id") + b"Q.", "a persistent id"),
    # numpy's own functions must not be altered for later loads: BUILD only on what was just made
    (b"\x80\x03" + name("numpy._core.numeric", "_frombuffer") + b"N}" + text("__defaults__") + b"K\x01\x85s\x86b.",
     "setting the state of a (function|method) that is not new"),
])
def test_names_and_opcodes_outside_plain_data_are_refused(stream, refused):
    with pytest.raises(PlaitError, match=f"refusing.*{refused}"):
        safe_load_pickle(stream, "x.pkl")


def test_a_dtype_state_that_would_turn_bytes_into_object_pointers_is_refused():
    # numpy.dtype("O") with its 'holds objects' flags cleared, then an array of it over 8 bytes: with NumPy's own
    # unpickler those bytes would be read as a pointer to a Python object
    forged = (b"\x80\x03" + name("numpy._core.numeric", "_frombuffer") + b"(C\x08" + b"A" * 8
              + dtype_with_flags("O8", 0) + b"K\x01\x85" + text("C") + b"tR.")
    with pytest.raises(PlaitError, match="refusing a NumPy dtype state that does not match"):
        safe_load_pickle(forged, "x.pkl")
    # a dtype used for an array, then changed: the array would see the new state
    changed_after_use = (b"\x80\x03" + name("numpy._core.numeric", "_frombuffer") + b"(C\x08" + b"\0" * 8
                         + name("numpy", "dtype") + text("V8") + b"\x89\x88\x87Rq\x00" + b"K\x01\x85" + text("C") + b"tR0"
                         + b"h\x00(K\x03" + text("|") + b"NNNJ\x08\x00\x00\x00J\x01\x00\x00\x00K\x00tb.")
    with pytest.raises(PlaitError, match="refusing setting the state of a .*that is not new"):
        safe_load_pickle(changed_after_use, "x.pkl")


def test_dataframes_structured_dtypes_and_out_of_band_buffers_are_refused():
    with pytest.raises(PlaitError, match="refusing to unpickle pandas.*save a DataFrame as parquet"):
        safe_load_pickle(pickle.dumps(pd.DataFrame({"a": [1, 2]})), "frame.pkl")
    with pytest.raises(PlaitError, match="structured NumPy dtype"):
        safe_load_pickle(pickle.dumps(np.zeros(2, dtype=[("x", "f4"), ("y", "i2")])), "s.pkl")
    buffers = []
    stream = pickle.dumps(np.arange(3), protocol=5, buffer_callback=buffers.append)
    with pytest.raises(PlaitError, match="out-of-band buffer"):
        safe_load_pickle(stream, "b.pkl")
    with pytest.raises(PlaitError, match="t.pkl: not a readable pickle"):
        safe_load_pickle(b"\x80\x04garbage", "t.pkl")


PLAIN = {
    "arrays": [np.arange(6).astype(dtype).reshape(2, 3) for dtype in ("f2", "f4", "f8", "i1", "u2", "i4", "i8", "?", "c8")],
    "orders": [np.asfortranarray(np.ones((2, 3))), np.arange(10)[::3], np.ones((3, 4)).T, np.array(2.5), np.empty((0, 3))],
    "other dtypes": [np.array(["ab", "c"]), np.array([b"xy"]), np.arange(3, dtype=">i4"), np.arange(3).astype("M8[D]")],
    "ragged": np.array([np.arange(2), np.arange(3.0)], dtype=object),
    "scalars": (np.float32(1.5), np.int64(-3), np.bool_(True), np.complex64(1j), np.datetime64("2020-01-01")),
    "python": {"set": {1, 2}, "frozen": frozenset("ab"), "bytes": b"", "bytearray": bytearray(b"x"), "complex": 1 + 2j,
               "none": None, "ordered": collections.OrderedDict(b=1, a=2), "dtype": np.dtype("float32")},
}


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_loads_as_the_ordinary_unpickler_loads_it(protocol):
    stream = pickle.dumps(PLAIN, protocol=protocol)
    ours, theirs = safe_load_pickle(stream, "p.pkl"), pickle.loads(stream)
    kinds = ("arrays", "orders", "other dtypes")
    for got, expected in zip(sum((ours[k] for k in kinds), []), sum((theirs[k] for k in kinds), [])):
        assert got.dtype == expected.dtype and got.shape == expected.shape and np.array_equal(got, expected)
        assert got.flags.writeable == expected.flags.writeable
    assert [a.tolist() for a in ours["ragged"]] == [[0, 1], [0.0, 1.0, 2.0]]
    assert ours["scalars"] == theirs["scalars"] and [type(s) for s in ours["scalars"]] == [type(s) for s in theirs["scalars"]]
    assert ours["python"] == theirs["python"] and type(ours["python"]["ordered"]) is collections.OrderedDict


def test_pickles_written_by_numpy_1_load_too():
    stream = pickle.dumps({"x": np.arange(4.0).reshape(2, 2), "s": np.int32(7)}, protocol=2)
    old = stream.replace(b"numpy._core.", b"numpy.core.")  # NumPy 1.x names its internals numpy.core
    assert old != stream
    loaded = safe_load_pickle(old, "old.pkl")
    assert np.array_equal(loaded["x"], np.arange(4.0).reshape(2, 2)) and loaded["s"] == 7


def test_array_files_npy_mapped_npz_and_pickle(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "a.npy", data)
    np.savez(tmp_path / "b.npz", x=data, y=np.arange(4))
    (tmp_path / "c.pkl").write_bytes(pickle.dumps({"x": [data, {"deep": np.int16(2)}]}))
    mapped = load_array_file(str(tmp_path / "a.npy"))
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, data)
    assert not isinstance(load_array_file(str(tmp_path / "a.npy"), mmap=False), np.memmap)
    archive = load_array_file(str(tmp_path / "b.npz"))
    assert sorted(archive) == ["x", "y"] and np.array_equal(archive["x"], data)
    assert load_array_file(str(tmp_path / "c.pkl"))["x"][1] == {"deep": 2}


def test_array_file_errors_name_the_file(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PlaitError, match=r"objects\.npy: cannot read as npy: .*Python objects"):
        load_array_file(str(tmp_path / "objects.npy"))
    with pytest.raises(PlaitError, match=r"nope\.npy: file not found"):
        load_array_file(str(tmp_path / "nope.npy"))
    with pytest.raises(PlaitError, match=r"x\.csv: not an array file"):
        load_array_file(str(tmp_path / "x.csv"))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(PlaitError, match=r"broken\.npz: cannot read as npz"):
        load_array_file(str(tmp_path / "broken.npz"))


def test_remote_array_files_are_read_through_fsspec():
    data = np.arange(6.0).reshape(2, 3)
    with fsspec.open("memory://bucket/arrays/a.npy", "wb") as handle:
        np.save(handle, data)
    assert np.array_equal(load_array_file("memory://bucket/arrays/a.npy"), data)


# tables

def npy_folder(folder, rows: int = 5, steps: int = 7, channels: int = 2):
    folder.mkdir()
    rng = np.random.default_rng(0)
    series = rng.normal(size=(rows, steps, channels)).astype(np.float32)
    np.save(folder / "series.npy", series)
    np.save(folder / "target.npy", np.arange(rows, dtype=np.float64))
    np.save(folder / "split.npy", np.array(["train", "train", "val", "test", "train"][:rows]))
    return series


def test_npy_folder_is_one_column_per_file_with_memory_mapped_rows(tmp_path):
    series = npy_folder(tmp_path / "arrays")
    (tmp_path / "arrays" / "notes.txt").write_text("ignored")
    table = read_table(str(tmp_path / "arrays"), "npy")
    assert sorted(table.columns) == ["series", "split", "target"] and len(table) == 5
    assert table["target"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    cell = table["series"][3]
    assert isinstance(cell, np.memmap) and cell.shape == (7, 2)  # a view of the mapped file, nothing copied
    assert not cell.flags.owndata and cell.base is table["series"][0].base and isinstance(cell.base, np.memmap)
    assert np.array_equal(cell, series[3])
    assert assign_splits(table, SplitConfig(), "arrays").tolist() == ["train", "train", "validation", "test", "train"]


def test_npy_split_from_a_text_file_and_npz_tables(tmp_path):
    npy_folder(tmp_path / "arrays")
    os.remove(tmp_path / "arrays" / "split.npy")
    (tmp_path / "arrays" / "split.txt").write_text("train\ntest\ntrain\ntrain\nval\n")
    assert read_table(str(tmp_path / "arrays"), "npy")["split"].tolist() == ["train", "test", "train", "train", "val"]
    np.savez(tmp_path / "t.npz", series=np.zeros((3, 4, 2)), label=np.array(["a", "b", "a"]))
    table = read_table(str(tmp_path / "t.npz"))  # auto: .npz is an npy table
    assert table["label"].tolist() == ["a", "b", "a"] and table["series"][0].shape == (4, 2)


def test_npy_tables_with_mismatched_rows_or_no_arrays_are_clear(tmp_path):
    npy_folder(tmp_path / "arrays")
    np.save(tmp_path / "arrays" / "short.npy", np.zeros(4))
    with pytest.raises(PlaitError, match=r"short\.npy has 4 rows \(first dimension\) but .*series\.npy has 5"):
        read_table(str(tmp_path / "arrays"), "npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlaitError, match="no .npy files"):
        read_table(str(tmp_path / "empty"), "npy")
    with pytest.raises(PlaitError, match="wants a folder of NAME.npy files"):
        read_table(str(tmp_path / "arrays" / "short.npy"), "npy")
    with pytest.raises(PlaitError, match="set data.format"):
        read_table(str(tmp_path / "arrays"))  # a folder is never guessed


def test_pickle_tables_as_rows_columns_or_keyed_rows(tmp_path):
    rows = [{"x": np.arange(3.0), "y": 1.5, "name": "a"}, {"x": np.arange(5.0), "y": 2.5}]
    (tmp_path / "rows.pkl").write_bytes(pickle.dumps(rows))
    table = read_table(str(tmp_path / "rows.pkl"))
    assert table["y"].tolist() == [1.5, 2.5] and table["name"][0] == "a" and pd.isna(table["name"][1])
    assert isinstance(table["x"][1], np.ndarray) and table["x"][1].shape == (5,)
    columns = {"x": np.ones((3, 4, 2)), "y": [1, 2, 3], "ragged": [np.ones(2), np.ones(3), np.ones(1)]}
    (tmp_path / "columns.pickle").write_bytes(pickle.dumps(columns))
    table = read_table(str(tmp_path / "columns.pickle"))
    assert table["x"][2].shape == (4, 2) and table["y"].tolist() == [1, 2, 3] and table["ragged"][1].shape == (3,)
    (tmp_path / "keyed.pkl").write_bytes(pickle.dumps({"s1": {"x": np.ones(2)}, "s2": {"x": np.ones(4)}}))
    assert read_table(str(tmp_path / "keyed.pkl"))["key"].tolist() == ["s1", "s2"]
    (tmp_path / "uneven.pkl").write_bytes(pickle.dumps({"x": [1, 2, 3], "y": [1, 2]}))
    with pytest.raises(PlaitError, match=r"uneven\.pkl, key 'y' has 2 rows .* key 'x' has 3"):
        read_table(str(tmp_path / "uneven.pkl"))
    (tmp_path / "array.pkl").write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(PlaitError, match=r"array\.pkl: holds a ndarray; a pickled table is"):
        read_table(str(tmp_path / "array.pkl"))


def test_a_folder_of_pickles_is_one_row_per_file(tmp_path):
    folder = tmp_path / "rows"
    folder.mkdir()
    for index in range(3):
        (folder / f"r{index}.pkl").write_bytes(pickle.dumps({"x": np.full((index + 1, 2), index), "y": index}))
    table = read_table(str(folder), "pickle")
    assert table["file"].tolist() == ["r0.pkl", "r1.pkl", "r2.pkl"] and table["y"].tolist() == [0, 1, 2]
    assert table["x"][2].shape == (3, 2)
    (folder / "r3.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(PlaitError, match=r"r3\.pkl: holds a list; a folder of pickles needs one dict per file"):
        read_table(str(folder), "pickle")
    (folder / "r3.pkl").write_bytes(pickle.dumps(RunsCode(os.system, "true")))
    with pytest.raises(PlaitError, match=r"r3\.pkl: refusing to unpickle"):
        read_table(str(folder), "pickle")


def test_array_tables_read_from_any_fsspec_url():
    for index in range(2):
        with fsspec.open(f"memory://bucket/rows/r{index}.pkl", "wb") as handle:
            handle.write(pickle.dumps({"x": np.arange(index + 2), "y": index}))
        with fsspec.open(f"memory://bucket/cols/{'ab'[index]}.npy", "wb") as handle:
            np.save(handle, np.arange(6).reshape(3, 2) * index)
    assert read_table("memory://bucket/rows", "pickle")["y"].tolist() == [0, 1]
    table = read_table("memory://bucket/cols/", "npy")
    assert sorted(table.columns) == ["a", "b"] and table["b"][2].tolist() == [4, 5]


def test_splits_csv_of_an_npy_table_leaves_its_array_cells_out(tmp_path):
    """Printing an array cell into splits.csv read a page of every row of the memory map (and wrote `[0.1 ...]`)."""
    from plait.config import validate
    from plait.demo.synthetic_sequences import make_spectra
    from plait.runs import Run

    folder = make_spectra(tmp_path, samples=40, length=64)
    config = validate({"name": "s", "data": {"table": str(folder), "format": "npy", "split": {"ratios": [0.8, 0.1, 0.1]}},
                       "inputs": [{"name": "spectrum", "type": "sequence", "column": "spectrum"}],
                       "outputs": [{"name": "p", "type": "number", "column": "peak1_position"}]})
    run = Run.start(config, tmp_path / "run")
    run.path().mkdir(parents=True, exist_ok=True)
    run.write_splits()
    written = pd.read_csv(run.path("splits.csv"))
    assert list(written.columns) == ["row", "file", "place", "split"] and len(written) == 40
