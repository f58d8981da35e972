"""Arrays and array tables on S3 (a `moto_server` over real HTTP, as in test_s3.py): a prefix of pickles is one row
per object, a prefix of .npy objects one column per object, and a sequence cell may name an object."""

from __future__ import annotations

import io
import pickle

import numpy as np

from plait.data.arrays import load_array_file
from plait.data.features.sequence import SequenceFeature, SequenceSettings
from plait.data.tables import read_table
from tests.test_s3 import aws, bucket, moto  # noqa: F401  (the S3 server and credentials fixtures)


def put(client, bucket_name: str, key: str, payload: bytes) -> str:
    client.put_object(Bucket=bucket_name, Key=key, Body=payload)
    return f"s3://{bucket_name}/{key}"


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_array_tables_and_sequence_cells_from_s3(bucket):
    name, client = bucket
    for index in range(3):
        put(client, name, f"rows/r{index}.pkl", pickle.dumps({"trace": np.full((index + 2, 2), float(index)), "y": index}))
    table = read_table(f"s3://{name}/rows/", "pickle")
    assert table["file"].tolist() == ["r0.pkl", "r1.pkl", "r2.pkl"] and table["trace"][2].shape == (4, 2)

    series = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    put(client, name, "cols/series.npy", npy_bytes(series))
    put(client, name, "cols/split.npy", npy_bytes(np.array(["train", "train", "test", "val"])))
    table = read_table(f"s3://{name}/cols", "npy")
    assert isinstance(table["series"][1], np.memmap) and np.array_equal(table["series"][1], series[1])  # mapped from the download
    assert table["split"].tolist() == ["train", "train", "test", "val"]

    url = put(client, name, "cells/a.npy", npy_bytes(np.ones((5, 2))))
    assert np.array_equal(load_array_file(url), np.ones((5, 2)))
    feature = SequenceFeature(SequenceSettings(name="trace", column="trace"), f"s3://{name}/cells")
    feature.fit(["a.npy"])
    assert feature.encode("a.npy")["length"].item() == 5 and feature.channels == 2
    assert feature.fingerprint("a.npy") == feature.fingerprint(url)
