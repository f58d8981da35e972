"""The command line: the same verbs as `plait.api`, one module per command group. A problem the user can fix is one
clear line (a usage mistake: the usage line and one error line, exit 2; a `PlaitError`: exit 1), never a traceback.

Nothing here imports torch or transformers at import time: `plait --help`, `plait COMMAND --help` and the quick
commands answer in a fraction of a second, and each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys

import typer

from plait.cli import cache, evaluation, inference, train
from plait.cli.augment import augment_app
from plait.cli.compare import compare
from plait.cli.sagemaker import sagemaker_app
from plait.cli.serve import serve
from plait.cli.tune import tune
from plait.cli.summary import summary
from plait.cli.usage import is_usage_error, show_usage_error
from plait.errors import PlaitError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train multimodal models from one YAML file.")


@app.callback()
def options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show other libraries' progress bars, "
                                         "warnings and log lines (hidden by default).")):
    from plait.console import quiet_libraries

    quiet_libraries(not verbose)


for command in (train.train, evaluation.evaluate, evaluation.ablate, evaluation.report, inference.predict,
                inference.index, inference.search, inference.embed, inference.caption, inference.export,
                train.init, train.validate, summary, train.demo, compare, serve, tune):
    app.command()(command)
app.add_typer(augment_app, name="augment")
app.add_typer(cache.cache_app, name="cache")
app.add_typer(sagemaker_app, name="sagemaker")


def main() -> None:
    try:
        code = app(standalone_mode=False, prog_name="plait")  # a command's typer.Exit(code) comes back as its return value
        if isinstance(code, int) and code:
            sys.exit(code)
    except PlaitError as error:
        from plait.distributed import world_from_env

        world = world_from_env()
        typer.echo(f"error{f' (rank {world.rank} of {world.size})' if world.is_distributed else ''}: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except Exception as error:
        if is_usage_error(error):
            sys.exit(show_usage_error(error))
        raise


if __name__ == "__main__":
    main()
