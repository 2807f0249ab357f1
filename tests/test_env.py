"""Environment switches: one grammar per kind, the reference system's names as aliases, bad values named."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.env import BLOCK_WORKERS, NAN_DEBUG, SANITIZE_GRADS, SWITCHES, env_count, env_flag
from ictal.errors import ConfigError
from ictal.models.debug import nan_debug_enabled
from ictal.train.trainer import sanitize_grads_enabled


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for switch in SWITCHES:
        for var in (switch.name, *switch.aliases):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("BGB_EDGE_CLAMP", raising=False)


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("TRUE", True), ("on", True), ("no", False), ("0", False)]
)
def test_flags_share_one_grammar_under_both_names(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    for switch, reader in ((NAN_DEBUG, nan_debug_enabled), (SANITIZE_GRADS, sanitize_grads_enabled)):
        for var in (switch.name, *switch.aliases):
            monkeypatch.setenv(var, value)
            assert reader(not expected) is expected, var
            monkeypatch.delenv(var)
        assert reader(True) is True and reader(False) is False  # unset: the config decides


def test_our_name_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGB_NAN_DEBUG", "1")
    monkeypatch.setenv("ICTAL_NAN_DEBUG", "0")
    assert env_flag(NAN_DEBUG, True) is False


def test_bad_values_are_one_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGB_SANITIZE_GRADS", "maybe")
    with pytest.raises(ConfigError, match="BGB_SANITIZE_GRADS='maybe' must be 1/true/yes/on or 0/false/no/off"):
        env_flag(SANITIZE_GRADS, False)
    for bad in ("0", "-2", "two"):
        monkeypatch.setenv(BLOCK_WORKERS.name, bad)
        with pytest.raises(ConfigError, match="ICTAL_BLOCK_WORKERS=.* is not a positive whole number"):
            env_count(BLOCK_WORKERS)
    monkeypatch.setenv(BLOCK_WORKERS.name, "3")
    assert env_count(BLOCK_WORKERS) == 3


def test_edge_clamp_is_said_to_mean_nothing_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGB_EDGE_CLAMP", "1")
    result = CliRunner().invoke(app, ["validate", "--help"])
    assert result.exit_code == 0
    assert "BGB_EDGE_CLAMP is set but has no effect in ictal: edge weights are bounded by construction" in result.output
