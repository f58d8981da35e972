"""plait: train multimodal deep-learning models from one declarative YAML file."""

__version__ = "0.1.0"


def train(*args, **kwargs):
    """See `plait.api.train`."""
    from plait.api import train as run

    return run(*args, **kwargs)


def evaluate(*args, **kwargs):
    """See `plait.api.evaluate`."""
    from plait.api import evaluate as run

    return run(*args, **kwargs)
