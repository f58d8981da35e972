"""plait: train multimodal deep-learning models from one declarative YAML file.

The public API is `__all__`: `plait.Model` for DataFrames in notebooks (`plait.notebook`), and the verbs `train` and
`evaluate` over config files and run folders (the rest of the verbs: `plait.api`). `import plait` stays light: each
name loads what it needs when it is first used.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers, IDEs and the API reference; at run time `__getattr__` loads it on first use
    from plait.notebook import Model

__version__ = "0.1.0"
__all__ = ["Model", "evaluate", "train", "__version__"]


def train(*args, **kwargs):
    """Train from a config into a new run folder, or resume one; returns the run folder.

    The same as `plait train` on the command line; the arguments are those of `plait.api.train` (`config`,
    `run_dir`, `overrides`, `resume`, `checkpoint`, `init_from`, `folds`, `stratify`).

    Examples:
        >>> run_dir = plait.train("recipes/demo.yaml", overrides=["train.epochs=3"])
        >>> plait.train(resume=run_dir, overrides=["train.epochs=6"])     # three more epochs, exactly
        >>> plait.train("config.yaml", folds=5, stratify="label")        # cross-validation
    """
    from plait.api import train as run

    return run(*args, **kwargs)


def evaluate(*args, **kwargs):
    """Metrics of a trained run on one split, as a dict; also written to `evaluation/SPLIT.json` in the run.

    The same as `plait evaluate`; the arguments are those of `plait.api.evaluate` (`run_dir`, `split`, `which`).

    Examples:
        >>> plait.evaluate("runs/demo-20261207-120000", split="test")
        {'label.accuracy': 1.0, 'label.macro_f1': 1.0, 'label.weighted_f1': 1.0, 'label.loss': 0.01, ...}
    """
    from plait.api import evaluate as run

    return run(*args, **kwargs)


def __getattr__(name: str):
    if name == "Model":
        from plait.notebook import Model

        return Model
    raise AttributeError(f"module 'plait' has no attribute {name!r}")
