"""Config schema, presets and ``ictal validate``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import config_from_dict, load_config, with_overrides
from ictal.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.mark.parametrize("name", ["smoke", "gpu24", "gpu80"])
def test_presets_are_valid(name: str) -> None:
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", check_paths=False)
    assert cfg.name == name


def test_every_problem_named_once() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(
            {"data": {"data_dirr": "x", "window_s": -1}, "preprocess": {"notch_hz": 55}, "foo": 1}, "t.yaml"
        )
    problems = info.value.problems
    assert len(problems) == 4
    text = "\n".join(problems)
    assert "data.data_dirr: unknown key" in text and "data_dir" in text  # names the allowed keys
    assert "data.window_s: got -1" in text
    assert "preprocess.notch_hz: got 55" in text
    assert "foo: unknown key" in text


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match="stride_s"):
        config_from_dict({"data": {"window_s": 10, "stride_s": 20}})
    with pytest.raises(ConfigError, match="inside data_dir"):
        config_from_dict({"data": {"data_dir": "/d", "cache_dir": "/d/cache"}})


def test_validate_cli_ok_and_missing_path(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    good = tmp_path / "good.yaml"
    good.write_text(f"data:\n  data_dir: {corpus}\n  cache_dir: {tmp_path / 'cache'}\n")
    result = runner.invoke(app, ["validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.output

    missing = tmp_path / "missing.yaml"
    missing.write_text(f"data:\n  data_dir: {tmp_path / 'nope'}\n")
    result = runner.invoke(app, ["validate", str(missing)])
    assert result.exit_code == 1
    assert "data.data_dir" in result.output and "does not exist" in result.output


def test_validate_cli_unknown_key_and_bad_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_sise: 4\n")
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "training.batch_sise: unknown key" in result.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    result = runner.invoke(app, ["validate", str(broken)])
    assert result.exit_code == 1 and "not valid YAML" in result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "absent.yaml")])
    assert result.exit_code == 1 and "file not found" in result.output


def test_post_and_szcore_sections() -> None:
    cfg = config_from_dict({"post": {"tau_on": 0.9, "tau_off": 0.8}, "szcore": {"merge_s": 60}})
    assert cfg.post.tau_on == 0.9 and cfg.szcore.merge_s == 60
    with pytest.raises(ConfigError) as info:
        config_from_dict({"post": {"tau_on": 0.5, "tau_off": 0.7}})
    assert "tau_off" in info.value.problems[0] and "tau_on" in info.value.problems[0]
    with pytest.raises(ConfigError, match="post.min_duraton_s: unknown key"):
        config_from_dict({"post": {"min_duraton_s": 3}})


def test_model_section_preset_and_override() -> None:
    cfg = config_from_dict({"model": {"preset": "tiny", "graph": {"semi_dynamic_interval": 4}}})
    assert cfg.model.preset == "tiny" and cfg.model.graph.semi_dynamic_interval == 4
    with pytest.raises(ConfigError, match="model.graph.use_dynamic_pee: unknown key"):
        config_from_dict({"model": {"graph": {"use_dynamic_pee": True}}})


def test_config_schema_does_not_load_torch() -> None:
    # Validating a config (`ictal validate`, checkpoint readers) must not pay for importing PyTorch.
    import subprocess
    import sys

    code = "import sys, ictal.config.schema; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cli_starts_without_torch_or_scipy() -> None:
    # `ictal --help` and `ictal validate` should not pay for PyTorch or SciPy: command modules import their stages
    # lazily.
    import subprocess
    import sys

    code = "import sys, ictal.cli.main; sys.exit(1 if {'torch', 'scipy'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_with_overrides_sets_dotted_keys_and_names_a_bad_one() -> None:
    cfg = config_from_dict({"model": {"preset": "tiny"}})
    out = with_overrides(
        cfg, {"training.loss": "bce", "model.node.n_layers": 3, "data.cache_dir": Path("c"), "x": None}
    )
    assert (out.training.loss, out.model.node.n_layers, out.data.cache_dir) == ("bce", 3, Path("c"))
    assert cfg.model.node.n_layers == 1  # a copy: the input is left as it was
    with pytest.raises(ConfigError, match=r"model\.nod\.n_layers: model has no section 'nod'; sections: .*node"):
        with_overrides(cfg, {"model.nod.n_layers": 3})
    with pytest.raises(ConfigError, match="trainin"):
        with_overrides(cfg, {"trainin.loss": "bce"})
    with pytest.raises(ConfigError, match="n_layer"):  # a misspelt last part: the schema names it
        with_overrides(cfg, {"model.node.n_layer": 3})
