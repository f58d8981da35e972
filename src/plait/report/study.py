"""`study.html`, the page of a `plait tune` study: the trials (click a heading to sort them, best first to start
with), the optimisation history, the parameters' importances, and the best trial with a link to its own report.
Self-contained like the run report; its one script only sorts the table."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from plait.evaluation.plots import optimisation_plot
from plait.html import escape
from plait.report.page import figure, number, page, table

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((heading, column) => heading.addEventListener('click', () => {
  const body = heading.closest('table').tBodies[0];
  const key = (row) => { const cell = row.cells[column], exact = cell.querySelector('[data-sort]');
                         const text = exact ? exact.dataset.sort : cell.textContent.replace(/,/g, '');
                         const value = parseFloat(text); return Number.isNaN(value) ? text : value; };
  const ascending = heading.dataset.order !== 'ascending';
  heading.dataset.order = ascending ? 'ascending' : 'descending';
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (ascending ? 1 : -1))
    .forEach((row) => body.append(row));
}));
"""


def study_page(study: optuna.Study, study_dir: Path, objective: str) -> str:
    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.value is not None]
    counts = {state.name.lower(): sum(t.state == state for t in study.trials) for state in TrialState}
    facts = [f"{objective} ({'lower' if minimize else 'higher'} is better)",
             ", ".join(f"{count} {state}" for state, count in counts.items() if count),
             f"written {time.strftime('%Y-%m-%d %H:%M')}"]
    sections = [("best", "Best trial", best_section(study, study_dir)),
                ("history", "Optimisation history", history_section(study, finished, study_dir, objective, minimize)),
                ("importance", "Parameter importance", importance_section(study)),
                ("trials", "Trials", trials_section(study, study_dir, minimize))]
    return page(f"{study.study_name}: study", facts, sections, script=SORT_SCRIPT)


def report_link(trial, study_dir: Path) -> str:
    """The trial's run folder, linked to its report when it has one (relative, so the folder can move)."""
    run_dir = Path(trial.user_attrs.get("run_dir", ""))
    name = escape(run_dir.name)
    return f'<a href="{name}/report.html">{name}</a>' if (study_dir / run_dir.name / "report.html").is_file() else name


def best_section(study: optuna.Study, study_dir: Path) -> str:
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        return '<p class="note">No trial has completed yet.</p>'
    best = study.best_trial
    values = best.user_attrs.get("values", best.params)
    rows = [[escape(path), shown(value)] for path, value in values.items()]
    return (f"<p>Trial {best.number}: {number(best.value)}, run {report_link(best, study_dir)}; its whole config is "
            f"<code>best.yaml</code>.</p>" + table(["path", "value"], rows))


def history_section(study, finished, study_dir: Path, objective: str, minimize: bool) -> str:
    if not finished:
        return ""
    best, current = [], None
    for trial in sorted(finished, key=lambda t: t.number):
        if trial.state == TrialState.COMPLETE and (current is None or (trial.value < current if minimize else trial.value > current)):
            current = trial.value
        if current is not None:
            best.append((trial.number, current))
    path = study_dir / "history.png"
    optimisation_plot([(t.number, t.value, t.state.name) for t in finished], best, str(path), study.study_name, objective)
    return figure(path, "each finished trial's objective (pruned: where it stopped) and the best so far")


def importance_section(study: optuna.Study) -> str:
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if len(completed) < 3:
        return '<p class="note">Importances need at least 3 completed trials.</p>'
    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as error:  # e.g. a parameter that never varied
        return f'<p class="note">No importances: {escape(error)}</p>'
    rows = [[escape(path), value, f'<span class="bar" style="width:{round(200 * value)}px"></span>'] for path, value in importances.items()]
    return ('<p class="note">Share of the objective\'s variance each parameter explains over the completed trials '
            "(Optuna's fANOVA).</p>" + table(["parameter", "importance", ""], rows))


def trials_section(study: optuna.Study, study_dir: Path, minimize: bool) -> str:
    paths = list(dict.fromkeys(path for t in study.trials for path in t.user_attrs.get("values", t.params)))
    worst = float("inf") if minimize else float("-inf")
    ordered = sorted(study.trials, key=lambda t: (t.value if t.value is not None else worst) * (1 if minimize else -1))
    rows = [[t.number, escape(t.state.name), t.value, len(t.intermediate_values),
             *(shown(t.user_attrs.get("values", t.params).get(path)) for path in paths), report_link(t, study_dir)]
            for t in ordered]
    note = '<p class="note">Click a heading to sort by it.</p>'
    return note + table(["trial", "state", "objective", "epochs", *paths, "run"], rows, "sortable")


def shown(value) -> str:
    """A trial's value as set: 4 significant digits for a float (a rate of 3e-5 stays readable), else as written."""
    if isinstance(value, float):
        return f'<span data-sort="{value!r}">{value:.4g}</span>'
    return escape(repr(value))
