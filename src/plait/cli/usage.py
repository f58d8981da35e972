"""Usage mistakes (an unknown command or option, a missing argument, a bad value) as two lines: the command's
usage and one error line, with the nearest valid name where there is one; exit status 2.

Click's own printing is not used: typer 0.29 and later bundle a private copy of click whose exceptions are not
`click.ClickException`, and with rich installed both draw a boxed panel. The exceptions are recognised by
their shape (a `format_message` and an `exit_code`), so any typer or click version prints the same lines.
"""

from __future__ import annotations

import sys


def is_usage_error(error: BaseException) -> bool:
    """A click-style exception (click's own or typer's bundled copy) that carries a message for the user."""
    return callable(getattr(error, "format_message", None)) and isinstance(getattr(error, "exit_code", None), int)


def show_usage_error(error: BaseException) -> int:
    """Print the usage line and one error line to stderr (the help, to stdout, for a bare group); returns the
    exit status."""
    context = getattr(error, "ctx", None)
    if type(error).__name__ == "NoArgsIsHelpError" and context is not None:  # `plait` or `plait cache` alone
        print(context.get_help())
        return 0
    if context is not None:
        print(context.get_usage(), file=sys.stderr)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    print(f"error: {message_of(error, context)}{hint}", file=sys.stderr)
    return error.exit_code


def message_of(error: BaseException, context) -> str:
    """Click's message, with one suggestion phrased the same way whichever click worded it."""
    option = getattr(error, "option_name", None)
    if option is not None and hasattr(error, "possibilities"):  # NoSuchOption
        return f"no such option {option}{suggestion(option, error.possibilities or option_names(context))}"
    text = error.format_message().strip().rstrip(".").replace(": Value error, ", ": ")
    if text.startswith("No such command") and context is not None:
        name = text.split("'")[1] if text.count("'") >= 2 else ""
        commands = context.command.list_commands(context) if hasattr(context.command, "list_commands") else []
        return f"no such command {name!r}{suggestion(name, commands)}"
    return text[0].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def suggestion(name: str, candidates) -> str:
    from plait.schema import nearest  # the config's own "did you mean"; imported only when a mistake is shown

    near = nearest(name, candidates)
    return f"; did you mean {near}?" if near else ""


def option_names(context) -> list[str]:
    if context is None:
        return []
    return [name for param in context.command.params for name in getattr(param, "opts", []) if name.startswith("-")]
