"""Progress bars show in a terminal and in a Jupyter notebook, and stay out of files and pipes."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

import plait.console as console_module


@pytest.mark.filterwarnings("ignore:install \"ipywidgets\":UserWarning")  # widgets are pretended, not installed
@pytest.mark.parametrize("console, widgets, shown", [
    (Console(file=io.StringIO(), force_terminal=True, force_jupyter=False), False, True),
    (Console(file=io.StringIO(), force_terminal=False, force_jupyter=True), True, True),  # rich draws a live widget
    (Console(file=io.StringIO(), force_terminal=False, force_jupyter=True), False, False),  # rich could only warn
    (Console(file=io.StringIO(), force_terminal=False, force_jupyter=False), True, False),  # a log file, CI, a pipe
])
def test_progress_shows_where_someone_watches(monkeypatch, console, widgets, shown):
    monkeypatch.setattr(console_module, "console", console)
    monkeypatch.setattr(console_module, "has_widgets", lambda: widgets)
    assert console_module.shows_progress() is shown
    assert console_module.new_progress().disable is (not shown)
    assert list(console_module.progress_bar(range(3), "items", total=3)) == [0, 1, 2]
