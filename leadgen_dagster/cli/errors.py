"""One line on stderr and exit code 2, whatever the input: the root group's error handling.

Click's own usage errors print a usage block, a hint and the error over four lines, and any
exception a command did not foresee (a RecursionError from a deeply nested file, an OSError on
an unreadable path) would print a traceback. `OneLineGroup.main` catches both at the root, so no
input can make `leadgen` print more than `error: <what is wrong>` and exit 2. Commands still
raise their own `ConfigError`s with precise messages (`friendly`); this is the net under them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

import click

from leadgen_core.redaction import redact


# click >= 8.2 raises this (a UsageError) for a group called without a subcommand.
class _NeverRaised(click.UsageError):
    pass


NO_ARGS_IS_HELP: Final[type[click.UsageError]] = getattr(click.exceptions, "NoArgsIsHelpError", _NeverRaised)
EXIT_BAD_INPUT: Final = 2
MAX_MESSAGE_CHARS: Final = 500


def one_line(message: str) -> str:
    """MESSAGE on one line, redacted, bounded, and writable to any stream (no lone surrogates)."""
    text = " ".join(redact(message).split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def fail(message: str) -> NoReturn:
    """Print `error: MESSAGE` as one line on stderr and exit 2."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _usage_message(exc: click.ClickException) -> str:
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and ctx is not None:
        return f"{message} (see `{ctx.command_path} --help`)"
    return message


class OneLineGroup(click.Group):
    """A click group whose standalone run reports every error as one line and exit code 2."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except NO_ARGS_IS_HELP as exc:  # a bare `leadgen` or `leadgen icp` asks for help: give it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
        except click.ClickException as exc:
            fail(_usage_message(exc))
        except RecursionError:
            fail("input nested too deeply")
        except Exception as exc:  # the net: a command's unforeseen error is still one line, no traceback
            from leadgen_dagster.cli.common import not_migrated

            fail(not_migrated(exc) or f"{type(exc).__name__}: {exc}")
        sys.exit(code if isinstance(code, int) else 0)
