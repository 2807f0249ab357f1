"""The ``ictal`` command line: a thin layer over the Python API, one module per sub-command.

Each module in ``COMMANDS`` defines ``register(app)``, which adds its sub-command(s) to the Typer app.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ictal",
    help="Clinical EEG seizure detection: read TUSZ, train V3, score like NEDC/SzCORE, predict events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Sub-command modules under ``ictal.cli``; each owns its command(s).
COMMANDS: tuple[str, ...] = (
    "validate_cmd",
    "score_cmd",
    "cache_cmd",
    "synth_cmd",
    "model_info_cmd",
    "train_cmd",
    "evaluate_cmd",
    "predict_cmd",
    "stream_cmd",
    "report_cmd",
    "demo_cmd",
)

for _name in COMMANDS:
    importlib.import_module(f"ictal.cli.{_name}").register(app)


def one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning as the command line shows it: ``warning: <message>`` (the message names the file it is about),
    not Python's ``module.py:412: Category: ...`` followed by a line of ictal's source."""
    return f"warning: {message}\n"


@app.callback()
def _root() -> None:
    """ictal: clinical EEG seizure detection."""
    import warnings

    from ictal.config.env import note_reference_only_switches

    warnings.formatwarning = one_line_warning

    for line in note_reference_only_switches():
        typer.echo(f"note: {line}", err=True)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
