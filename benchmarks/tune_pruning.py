"""What pruning saves in `plait tune`: the same search with the median pruner and without, epochs trained and the best
validation metric of each.

    .venv/bin/python benchmarks/tune_pruning.py                   # 24 trials each on the demo (~8 min on 2 cores)
    .venv/bin/python benchmarks/tune_pruning.py --trials 12 --rows 400

It generates the demo data once (`plait demo`'s photo + note + reading → 8 labels), then runs two studies with the
same sampler seed over a space whose learning rates reach far too low and too high, one with `pruner: median` and
one with `pruner: none`, and prints for each: trials completed and pruned, epochs trained (the validations the trials
reported), the best validation accuracy, and the time; then the share of epochs pruning saved (target >= 40%) and
the difference of the best accuracies (target: equal within noise). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "train.optimizer.lr": {"loguniform": [1.0e-6, 3.0]},  # the bottom and top decades cannot train in a few epochs
    "fusion.dropout": {"uniform": [0.0, 0.5]},
    "fusion.hidden": {"choice": [[32], [64], [128, 64]]},
}


def study(table: Path, folder: Path, pruner: str, trials: int, epochs: int) -> dict:
    from plait import api
    from plait.config import load_config, validate, to_dict

    raw = to_dict(load_config(ROOT / "recipes/demo.yaml", [f"data.table={table}", f"train.epochs={epochs}",
                                                            "train.checkpoint_every_steps=null"]))
    raw.update(tracking=[], report={"write": False})
    raw["tune"] = {"trials": trials, "sampler": "tpe", "pruner": pruner, "startup_trials": 4, "warmup_epochs": 1, "space": SPACE}
    started = time.perf_counter()
    api.tune(validate(raw), folder)
    seconds = time.perf_counter() - started
    results = pd.read_csv(folder / "trials.csv")
    return {"completed": int((results["state"] == "COMPLETE").sum()), "pruned": int((results["state"] == "PRUNED").sum()),
            "epochs": int(results["epochs"].sum()), "best": float(results.loc[results["state"] == "COMPLETE", "value"].max()),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=8)
    options = parser.parse_args()
    os.environ.setdefault("PLAIT_CACHE_DIR", tempfile.mkdtemp(prefix="plait-bench-cache-"))
    from plait.demo.synthetic import make_demo

    with tempfile.TemporaryDirectory(prefix="plait-tune-pruning-") as scratch, open(os.devnull, "w") as quiet:
        table = make_demo(Path(scratch) / "data", rows=options.rows)
        with contextlib.redirect_stderr(quiet):  # the trials' training output; the results are printed below
            results = {pruner: study(table, Path(scratch) / pruner, pruner, options.trials, options.epochs)
                       for pruner in ("median", "none")}
    print(f"\n{options.trials} trials each, {options.epochs} epochs per trial, demo data of {options.rows} rows")
    for pruner, result in results.items():
        print(f"  pruner {pruner:<6}  completed {result['completed']:>2}  pruned {result['pruned']:>2}  epochs trained "
              f"{result['epochs']:>4}  best validation.label.accuracy {result['best']:.4f}  {result['seconds']:.0f} s")
    saved = 1 - results["median"]["epochs"] / results["none"]["epochs"]
    print(f"  pruning saved {saved:.0%} of the epochs (target >= 40%); best accuracy with pruning minus without: "
          f"{results['median']['best'] - results['none']['best']:+.4f} (target: equal within noise)")


if __name__ == "__main__":
    main()
