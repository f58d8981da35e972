"""What the user sees in the terminal: progress bars and tables (rich), quiet when output is not a terminal."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True)
T = TypeVar("T")


def new_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        console=console, transient=True, disable=not console.is_terminal, refresh_per_second=4,
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
