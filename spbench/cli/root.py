"""The `spbench` command: the typer app that gathers the command modules, and :func:`main`,
which turns errors into one line and an exit status. Heavy libraries are imported inside
commands, so `--help` and `spbench ls` are quick (and import no torch)."""

from __future__ import annotations

import sys

import typer

from spbench.cli import attention, compare, convert, data, ls, prepare, results, run, train
from spbench.cli.console import err_console
from spbench.errors import SpbenchError

app = typer.Typer(
    name="spbench",
    help=(
        "Benchmark pose-guided text-to-image generation (SP-Ctrl, ControlNet, ...) on AP-10K and Human-Art.\n\n"
        "Quick start, tiny random models on the shipped sample (CPU, about a minute):\n\n"
        "  spbench run --method controlnet --dataset sample --profile tiny\n\n"
        "Real models and data:\n\n"
        "  spbench run --method controlnet --dataset ap10k --data-root /data/ap10k --profile paper"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.command()(run.run)
app.command()(run.generate)
app.command()(run.evaluate)
app.command()(prepare.prepare)
app.add_typer(data.data_app, name="data")
app.command()(train.train)
app.add_typer(convert.convert_app, name="convert")
app.command("ls")(ls.list_things)
app.command()(results.table)
app.command()(results.check)
app.command()(compare.compare)
app.command()(results.report)
app.command()(results.figures)
app.command()(attention.attention)


def _usage_error_line(e) -> str:
    """A click usage error (bad option value, unknown option, ...) as one line, not typer's box."""
    message = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    hint = f" (`{ctx.command_path} --help` lists the options)" if ctx is not None else ""
    return f"error: {message}{hint}"


def _click_errors() -> tuple[type, ...]:
    """The exception base of click's errors: typer's vendored click and click itself."""
    bases: list[type] = [typer.Abort]
    if hasattr(typer, "TyperException"):
        bases.append(typer.TyperException)
    try:
        import click

        bases += [click.ClickException, click.exceptions.Abort]
    except ImportError:
        pass
    return tuple(bases)


INTERRUPTED = "interrupted: finished images are kept; run the same command again to resume"


def main() -> None:
    try:
        # Not standalone: click's usage errors come here, to be printed as one line.
        code = app(standalone_mode=False)
    except SpbenchError as e:
        err_console.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except _click_errors() as e:
        name = type(e).__name__
        if name == "NoArgsIsHelpError":  # the help was printed already
            sys.exit(getattr(e, "exit_code", 2))
        if name == "Abort" or not hasattr(e, "format_message"):
            err_console.print("aborted", markup=False, highlight=False)
            sys.exit(1)
        err_console.print(_usage_error_line(e), markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED, markup=False, highlight=False, soft_wrap=True)
        sys.exit(130)
    if code == 130:  # typer turns Ctrl-C into exit status 130 without a word
        err_console.print(INTERRUPTED, markup=False, highlight=False, soft_wrap=True)
    sys.exit(code if isinstance(code, int) else 0)
