"""`plait demo`: generate the multimodal demo data, train the embedded recipe, show what fusion buys."""

from __future__ import annotations

import tempfile
import time
from importlib import resources
from pathlib import Path

from plait import api
from plait.config import apply_overrides, read_yaml, validate
from plait.console import print_table, say
from plait.data.synthetic import make_demo


def demo_recipe() -> Path:
    return Path(str(resources.files("plait") / "recipes" / "demo.yaml"))


def run_demo(folder: str | Path | None = None, rows: int = 1500, overrides: list[str] = ()) -> dict[str, dict]:
    started = time.perf_counter()
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="plait-demo-"))
    say(f"generating {rows} rows of demo data in {folder / 'data'}")
    table = make_demo(folder / "data", rows)
    raw = apply_overrides(read_yaml(demo_recipe()), [f"data.table={table.resolve()}", *overrides])
    run_dir = api.train(validate(raw, str(demo_recipe())), run_dir=folder / "run")
    results = api.input_ablation(run_dir, "test")
    rows_out = [[name, metrics["label.accuracy"], metrics["label.macro_f1"]] for name, metrics in results.items()]
    print_table("test split, by inputs used (left-out inputs masked)", ["inputs", "accuracy", "macro F1"], rows_out, to_stdout=True)
    say(f"demo finished in {time.perf_counter() - started:.0f} s; run folder: {run_dir}")
    return results
