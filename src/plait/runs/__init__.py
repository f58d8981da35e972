"""Runs: `Run` holds one run in memory (run.py); setup.py makes what every run starts from (torch, folder,
preprocessor, table, cache); training.py trains a run end to end; final.py writes its evaluations and report."""

from plait.runs.run import Evaluation, Run

__all__ = ["Evaluation", "Run"]
