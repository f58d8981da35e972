"""What the user sees in the terminal or a notebook: progress bars and tables (rich). Progress bars show in a
terminal and in Jupyter (rich draws them as a live widget there, with ipywidgets: the `notebook` extra), and stay
quiet when output goes to a file or a pipe, as in CI logs."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True)
T = TypeVar("T")


def shows_progress() -> bool:
    """In a terminal, or in Jupyter where ipywidgets is installed (rich draws the bar with it; without it rich
    could only warn)."""
    return console.is_terminal or (console.is_jupyter and has_widgets())


def has_widgets() -> bool:
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def new_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=True, disable=not shows_progress(), refresh_per_second=4,
    )


def progress_bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    with new_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)


def print_table(title: str, columns: list[str], rows: list[list], to_stdout: bool = False) -> None:
    table = Table()
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row])
    target = Console() if to_stdout else console
    target.print(title, style="bold", highlight=False, soft_wrap=True)
    target.print(table)


def say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def quiet_libraries(quiet: bool = True) -> None:
    """Hide other libraries' progress bars, warnings and log lines (Hugging Face's `Loading weights` bar, advisory
    warnings), so the terminal shows plait's own progress alone; `quiet=False` (`plait --verbose`) shows them.
    Set through the environment, read when each library is first imported, and applied directly to those already
    imported."""
    import logging
    import os
    import sys
    import warnings

    settings = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
                "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TOKENIZERS_PARALLELISM": "false"}
    for key, value in settings.items():
        if quiet:
            os.environ.setdefault(key, value)
        elif os.environ.get(key) == value:
            os.environ.pop(key)
    warnings.simplefilter("ignore" if quiet else "default")
    for name in ("transformers", "huggingface_hub", "diffusers", "urllib3", "numba"):
        logging.getLogger(name).setLevel(logging.ERROR if quiet else logging.NOTSET)
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar() if quiet else hf_logging.enable_progress_bar()
        hf_logging.set_verbosity_error() if quiet else hf_logging.set_verbosity_warning()
