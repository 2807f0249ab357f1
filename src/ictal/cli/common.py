"""What every sub-command shares: one way to report a failure, a config's problems and the device.

A command catches :class:`~ictal.errors.IctalError` around its work and turns it into one line on stderr and
exit code 1 (:func:`fail`); a config with problems prints one line per problem (:func:`config_exit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ictal.errors import ConfigError

if TYPE_CHECKING:
    from ictal.config.schema import IctalConfig


def fail(exc: Exception | str) -> typer.Exit:
    """Print ``error: ...`` on stderr; the exit to raise (code 1)."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def config_exit(exc: ConfigError) -> typer.Exit:
    """Print a config's problems, one per line under ``SOURCE: N problem(s)``; the exit to raise (code 1)."""
    typer.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
    for line in exc.problems:
        typer.echo(f"  {line}", err=True)
    return typer.Exit(1)


def checked(option: str, value: Any, schema_type: Any) -> Any:
    """``value`` validated against the API's own type for it (a ``Literal`` or a pydantic type), so a choice is
    checked where it is defined; one line naming the option and exit code 2 (a usage error) when it fails."""
    import pydantic

    try:
        return pydantic.TypeAdapter(schema_type).validate_python(value)
    except pydantic.ValidationError as exc:
        typer.echo(f"error: {option} {value!r}: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None


def load_config_or_exit(
    path: Path, overrides: dict[str, Any] | None = None, *, check_paths: bool = True
) -> IctalConfig:
    """The validated config at ``path`` with ``overrides`` (dotted keys) on top; its problems and exit 1 else."""
    from ictal.config.schema import load_config, with_overrides

    try:
        cfg = load_config(path, check_paths=check_paths)
        return with_overrides(cfg, overrides) if overrides else cfg
    except ConfigError as exc:
        raise config_exit(exc) from None
