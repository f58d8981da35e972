"""First contact: every usage mistake is the usage line and one error line (exit 2), bad rows name a place a user can
open, counts add up, other libraries stay quiet, and the quick commands never import torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from plait.cli import app
from plait.data.places import RowPlaces, csv_lines
from plait.data.tables import read_table_at
from tests.conftest import ROOT, run_cli_here

RECIPES = ROOT / "src" / "plait" / "recipes"


def leaf_commands(group=None, path=()):
    """(path, click command) of every command of the CLI, sub-apps included."""
    import typer.main

    group = group or typer.main.get_command(app)
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        if hasattr(command, "list_commands"):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


COMMANDS = sorted(leaf_commands())
NAMES = [" ".join(path) for path, _ in COMMANDS]


def assert_usage_error(result, path: tuple, expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"Usage: plait {' '.join(path)}".rstrip()), lines[0]
    assert lines[1].startswith(f"error: {expected}"), lines[1]


def test_every_command_is_covered():
    assert {"train", "predict", "evaluate", "validate", "cache info", "cache build", "augment generate", "sagemaker train",
            "sagemaker deploy", "compare", "report"} <= set(NAMES)


@pytest.mark.parametrize("path", [path for path, _ in COMMANDS], ids=NAMES)
def test_an_unknown_option_names_the_nearest_one(path):
    result = run_cli_here(*path, "--bogus-option", "x")
    assert_usage_error(result, path, "no such option --bogus-option")


@pytest.mark.parametrize("path", [path for path, command in COMMANDS if any(p.required for p in command.params)],
                         ids=[name for name, (_, command) in zip(NAMES, COMMANDS) if any(p.required for p in command.params)])
def test_a_missing_argument_or_option_is_named(path):
    assert_usage_error(run_cli_here(*path), path, "missing ")


def bad_value_case(command):
    """An option of `command` whose type (a number or a choice, read from the function's annotations) refuses
    `not-a-value`, or None."""
    import enum
    import typing

    hints = typing.get_type_hints(command.callback)
    for param in command.params:
        if param.param_type_name != "option":
            continue
        kind = hints.get(param.name)
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)  # Optional[X] → X
        if kind in (int, float) or (isinstance(kind, type) and issubclass(kind, enum.Enum)):
            return param.opts[0]
    return None


BAD_VALUES = [(path, bad_value_case(command)) for path, command in COMMANDS if bad_value_case(command)]


@pytest.mark.parametrize("path,option", BAD_VALUES, ids=[" ".join(path) for path, _ in BAD_VALUES])
def test_a_bad_value_is_refused_before_any_work(path, option):
    required = [arg for p in COMMANDS if p[0] == path for arg in p[1].params if arg.required]
    fillers = []
    for param in required:  # every required argument and option filled, so the bad value is what is refused
        fillers += ["somewhere"] if param.param_type_name == "argument" else [param.opts[0], "somewhere"]
    assert_usage_error(run_cli_here(*path, *fillers, option, "not-a-value"), path, f"invalid value for '{option}'")


def test_bad_values_cover_the_commands_with_checked_options():
    covered = {" ".join(path) for path, _ in BAD_VALUES}
    assert {"train", "evaluate", "ablate", "report", "predict", "index", "search", "embed", "caption", "export"} <= covered


@pytest.mark.parametrize("words,expected", [
    (["nosuchcommand"], "no such command 'nosuchcommand'"),
    (["trian", "x.yaml"], "no such command 'trian'; did you mean train?"),
    (["cache", "biuld"], "no such command 'biuld'; did you mean build?"),
    (["evaluate", "RUN", "--splt", "test"], "no such option --splt; did you mean --split?"),
    (["cache", "info", "--cache-dir", "X"], "no such option --cache-dir; did you mean --dir?"),
    (["predict", "RUN", "--input", "a.csv"], "missing option '--output'"),
    (["evaluate", "RUN", "--split", "tst"], "invalid value for '--split': 'tst' is not one of 'train', 'validation', 'test'"),
])
def test_the_mistakes_a_new_user_makes(words, expected):
    result = run_cli_here(*words)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(f"error: {expected}"), result.stderr


def test_a_bare_group_prints_its_help():
    result = run_cli_here("cache")
    assert result.returncode == 0 and "build" in result.stdout and "info" in result.stdout


def test_usage_errors_are_recognised_by_shape_whatever_click_raised_them():
    from plait.cli.usage import is_usage_error, show_usage_error

    class ForeignUsageError(Exception):  # a click copy plait has never seen
        exit_code = 2
        ctx = None

        def format_message(self):
            return "No such option: --x"

    assert is_usage_error(ForeignUsageError()) and not is_usage_error(ValueError("x"))
    assert show_usage_error(ForeignUsageError()) == 2


QUICK = [["--help"], ["train", "--help"], ["predict", "--help"], ["cache", "--help"], ["cache", "info"],
         ["cache", "clear"], ["compare", "--help"], ["validate", "RECIPE"]]


@pytest.mark.parametrize("words", QUICK, ids=[" ".join(w) for w in QUICK])
def test_quick_answers_import_neither_torch_nor_transformers(words, tmp_path):
    probe = ("import sys; sys.argv = ['plait', *sys.argv[1:]]\n"
             "from plait.cli import main\n"
             "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
             "heavy = sorted(m for m in ('torch', 'transformers', 'torchmetrics') if m in sys.modules)\n"
             "print('HEAVY', heavy, file=sys.stderr)\n")
    words = [*words, "--dir", str(tmp_path)] if words[0] == "cache" and words[1] != "--help" else words
    words = [str(RECIPES / "sentiment_video_audio_text.yaml") if word == "RECIPE" else word for word in words]
    result = subprocess.run([sys.executable, "-c", probe, *words], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stderr, result.stderr


def test_other_libraries_are_quiet_unless_verbose(tmp_path, monkeypatch):
    import os

    from transformers.utils import logging as hf_logging

    for key in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(key, raising=False)
    run_cli_here("cache", "info", "--dir", tmp_path)
    assert not hf_logging.is_progress_bar_enabled() and os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    assert hf_logging.get_verbosity() == hf_logging.ERROR
    run_cli_here("--verbose", "cache", "info", "--dir", tmp_path)
    assert hf_logging.is_progress_bar_enabled() and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ


def test_csv_line_numbers_count_quoted_cells_that_span_lines():
    text = 'a,b\n1,"two\nlines"\n\n3,x\n'
    assert csv_lines(text) == [2, 5]  # the record after the two-line cell and a blank line starts on line 5


@pytest.mark.parametrize("text,lines", [
    ("a,b\n1,2\n   \n5,6\n", [2, 4]),  # an all-space line is skipped, as pandas skips it
    ("a,b\r1,2\r5,6\r", [2, 3]),  # old Mac line ends
    ('a,b\n1,"' + "x" * 200_000 + '"\n3,4\n', [2, 3]),  # a cell beyond the csv module's default size limit
])
def test_csv_line_numbers_agree_with_what_pandas_reads(text, lines):
    import io

    assert csv_lines(text) == lines and len(pd.read_csv(io.StringIO(text))) == len(lines)


def test_a_place_that_cannot_be_counted_falls_back_to_the_row(tmp_path):
    from plait.data.places import jsonl_lines

    assert jsonl_lines('{"a": "x\u2028y"}\n\n{"a": 3}') == [1, 3]  # U+2028 inside a string does not end a line
    (tmp_path / "t.csv").write_text("a::b\n1::2\n")
    assert RowPlaces.of_file(str(tmp_path / "t.csv"), "csv", "::").describe(0) == f"{tmp_path / 't.csv'}, row 0"
    assert RowPlaces.of_file(str(tmp_path / "gone.csv"), "csv").describe(3) == f"{tmp_path / 'gone.csv'}, row 3"


def test_a_run_that_skips_nothing_leaves_no_old_list(tmp_path):
    from plait.data.dataset import EncodedSplit, SkippedRow, write_skipped

    listed = tmp_path / "o.skipped.jsonl"
    split = EncodedSplit("predict", [0], {}, {}, skipped=[SkippedRow(1, "x", "not a number: 'n/a'", "t.csv", "line 3")])
    assert write_skipped([split], listed) == 1 and listed.is_file()
    assert write_skipped([EncodedSplit("predict", [0, 1], {}, {})], listed) == 0 and not listed.exists()


def test_meld_rows_are_placed_in_their_own_csv(tmp_path):
    from tests.test_meld import write_split

    write_split(tmp_path, "train_sent_emo.csv", "train_splits", [("Hi.", "joy", 0, 0), ("Two\nlines.", "anger", 0, 1)])
    write_split(tmp_path, "test_sent_emo.csv", "output_repeated_splits_test",
                [("Oh.", "fear", 7, 0), ("Ah.", "fear", 7, 1), ("Eh.", "joy", 7, 2)])
    table, places = read_table_at(str(tmp_path), "meld")
    third_of_test = len(table) - 1
    assert places.describe(third_of_test) == f"{tmp_path / 'test_sent_emo.csv'}, line 4"
    assert places.place(1) == (str(tmp_path / "train_sent_emo.csv"), "line 3")


def test_places_of_other_layouts(tmp_path):
    frame = pd.DataFrame({"x": [1, 2, 3]})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    assert read_table_at(str(tmp_path / "t.parquet"))[1].describe(2) == f"{tmp_path / 't.parquet'}, row 2"
    assert read_table_at(str(tmp_path / "t.jsonl"))[1].describe(2) == f"{tmp_path / 't.jsonl'}, line 3"
    coco = {"images": [{"id": 1, "file_name": "a.jpg"}],
            "annotations": [{"image_id": 1, "caption": ""}, {"image_id": 1, "caption": "a cat"}]}
    (tmp_path / "captions_val2017.json").write_text(json.dumps(coco))
    _, places = read_table_at(str(tmp_path / "captions_val2017.json"), "coco")
    assert places.describe(0) == f"{tmp_path / 'captions_val2017.json'}, annotations[1]"  # the empty caption is left out
    assert RowPlaces("rows").describe(4) == "rows, row 4"


def test_cells_add_up_to_the_rows_and_a_second_pass_reads_the_cache(tmp_path):
    """Clips without sound are missing (with why), a zero-byte clip is bad (in words), the rest decode; the second
    encoding reads every decoded cell from the cache. Each input's counts add up to the split's rows."""
    from plait.config import validate
    from plait.data.cache import FeatureCache
    from plait.data.dataset import Preprocessor
    from plait.demo.synthetic_media import ramp_frames, write_clip
    from plait.demo.synthetic_meld import make_meld

    make_meld(tmp_path, dialogues=(3, 1, 1), size=16, frames=4)
    clips = sorted((tmp_path / "train_splits").glob("*.mp4"))
    write_clip(clips[0], ramp_frames(4, 16, 16), fps=8)  # video only: no audio track
    clips[1].write_bytes(b"")
    config = validate({
        "data": {"table": str(tmp_path), "format": "meld", "on_bad_sample": "skip"},
        "inputs": [{"name": "video", "type": "video", "column": "clip", "frames": 4, "size": 16, "encoder": {"name": "cnn3d"}},
                   {"name": "sound", "type": "audio", "column": "clip", "source": "video_column", "missing": "mask"}],
        "outputs": [{"name": "emotion", "type": "category", "column": "Emotion"}],
    })
    table, places = read_table_at(str(tmp_path), "meld")
    train = table[table["split"] == "train"]
    preprocessor = Preprocessor(config, str(tmp_path))
    preprocessor.fit(train)
    cache = FeatureCache(tmp_path / "cache")
    first = preprocessor.encode(train, "train", places, "skip", row_numbers=train.index, cache=cache)
    again = preprocessor.encode(train, "train", places, "skip", row_numbers=train.index, cache=cache)
    rows = len(train)
    assert first.read == rows and len(first.skipped) == 1 and first.skipped[0].reason.endswith("empty file (0 bytes)")
    assert first.skipped[0].file == str(tmp_path / "train_sent_emo.csv") and first.skipped[0].place.startswith("line ")
    video, sound = first.tallies["video"], again.tallies["sound"]
    assert (video.decoded, video.from_cache, video.bad) == (rows - 1, 0, 1) and video.total == rows
    assert sound.missing == {"no audio track": 1} and sound.bad == 1 and sound.total == rows
    assert (sound.decoded, sound.from_cache) == (0, rows - 2)  # every decodable sound came from the cache the second time


def test_a_run_loads_without_torchmetrics_until_it_scores():
    """torchmetrics' package import pulls in scipy.signal and transformers (about 4 s on a CPU), paid again by every
    process of `--nproc N` and every `plait predict` or `serve`; only scoring needs it."""
    probe = ("import sys\nfrom plait.runs import Run\nfrom plait.tasks import category, number, binned\n"
             "from plait.evaluation import per_class\nprint('LOADED', 'torchmetrics' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "LOADED False" in result.stdout, result.stderr
