"""plait: train multimodal deep-learning models from one declarative YAML file.

The public API is `__all__`: `plait.Model` for DataFrames in notebooks (`plait.notebook`), and the verbs `train` and
`evaluate` over config files and run folders (the rest of the verbs: `plait.api`). `import plait` stays light: each
name loads what it needs when it is first used.
"""

__version__ = "0.1.0"
__all__ = ["Model", "evaluate", "train", "__version__"]


def train(*args, **kwargs):
    """See `plait.api.train`."""
    from plait.api import train as run

    return run(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See `plait.api.evaluate`."""
    from plait.api import evaluate as run

    return run(*args, **kwargs)


def __getattr__(name: str):
    if name == "Model":
        from plait.notebook import Model

        return Model
    raise AttributeError(f"module 'plait' has no attribute {name!r}")
