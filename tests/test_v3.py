"""V3 detector: shapes, presets and config, gradients everywhere, stability, PE work, NaN debugging, model-info."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
import torch.utils.checkpoint
import typer
import yaml
from typer.testing import CliRunner

from ictal.cli import model_info_cmd
from ictal.errors import ConfigError
from ictal.models.config import V3Config, load_v3_config
from ictal.models.debug import NonFiniteError
from ictal.models.info import macs_per_window, parameter_counts
from ictal.models.mamba.mamba2 import mamba_backend
from ictal.models.v3 import V3Detector, build_v3

N_FRAMES = 64
T = 16 * N_FRAMES  # 4 s at 256 Hz: short, so the tests stay fast


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # Small tensors gain nothing from intra-op threads, and on a busy machine each parallel region waits for
    # a second core: one thread keeps this file fast everywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> V3Detector:
    torch.manual_seed(0)
    return build_v3("tiny")


def test_frame_and_per_sample_shapes(tiny: V3Detector) -> None:
    x = torch.randn(2, 19, T)
    assert tiny(x).shape == (2, N_FRAMES)
    assert tiny(x, per_sample=True).shape == (2, T)
    # Any length that is a multiple of 16 (streaming chunks), also one not a multiple of the pooling factors.
    assert tiny(torch.randn(1, 19, 16 * 37)).shape == (1, 37)


def test_per_sample_upsampling_follows_the_frame_logits() -> None:
    torch.manual_seed(0)
    model = V3Detector(V3Config.from_preset("tiny", upsample="repeat", dropout=0.0)).eval()
    x = torch.randn(1, 19, T)
    with torch.no_grad():
        frames, samples = model(x), model(x, per_sample=True)
    torch.testing.assert_close(samples, frames.repeat_interleave(16, dim=-1))
    model.config.upsample = "linear"
    with torch.no_grad():
        linear = model(x, per_sample=True)
    # Linear interpolation: a frame's value sits at the centre of its 16 samples (sample 7.5), held at the ends.
    centres = 16 * np.arange(N_FRAMES) + 7.5
    expected = np.interp(np.arange(T), centres, frames[0].numpy())
    np.testing.assert_allclose(linear[0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_bad_input_shapes_are_refused(tiny: V3Detector) -> None:
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny(torch.randn(1, 19, T + 5))
    with pytest.raises(ValueError, match="19"):
        tiny(torch.randn(1, 18, T))


def test_every_parameter_receives_a_gradient(tiny: V3Detector) -> None:
    tiny.zero_grad(set_to_none=True)
    tiny.train()
    tiny(torch.randn(2, 19, T)).sum().backward()
    missing = [name for name, p in tiny.named_parameters() if p.grad is None]
    assert missing == []
    zero = [name for name, p in tiny.named_parameters() if p.grad is not None and p.grad.abs().sum() == 0]
    assert zero == []


def test_every_base_parameter_is_used() -> None:
    # The reference system built a 22 M-parameter stack it never called; check the full-size model too.
    torch.manual_seed(0)
    model = build_v3("base")
    model(torch.randn(1, 19, 16 * 32)).sum().backward()
    assert [name for name, p in model.named_parameters() if p.grad is None] == []
    assert parameter_counts(model)["total"] > 1_000_000


def _adversarial_inputs() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(2, 19, T, generator=gen)
    constant = torch.arange(19, dtype=torch.float32).view(1, 19, 1).expand(2, 19, T).clone()
    flat_line = noise.clone()
    flat_line[:, 5] = 0.0
    return {
        "zeros": torch.zeros(2, 19, T),
        "constant channels": constant,
        "1e4-scaled noise": 1e4 * noise,
        "one flat-line channel": flat_line,
    }


@pytest.mark.parametrize("precision", ["float32", "bf16 autocast"])
@pytest.mark.parametrize("case", list(_adversarial_inputs()))
def test_finite_outputs_and_gradients_on_adversarial_inputs(tiny: V3Detector, case: str, precision: str) -> None:
    x = _adversarial_inputs()[case]
    tiny.train()
    tiny.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision != "float32"):
        out = tiny(x, per_sample=True)
    assert torch.isfinite(out).all(), f"{case} / {precision}: non-finite output"
    out.float().pow(2).mean().backward()
    bad = [n for n, p in tiny.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert bad == [], f"{case} / {precision}: non-finite gradients in {bad}"


def test_activation_checkpointing_gives_the_same_output_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_checkpoint = torch.utils.checkpoint.checkpoint

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real_checkpoint(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", spy)
    x = torch.randn(2, 19, T)
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = V3Detector(V3Config.from_preset("tiny", activation_checkpointing=checkpointed))
        out = model(x)
        out.pow(2).mean().backward()
        grads.append((out.detach(), {n: p.grad for n, p in model.named_parameters()}))
    assert len(calls) == 2  # tiny: one node layer and one edge layer, checkpointed only when asked
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for name, g in grads[0][1].items():
        torch.testing.assert_close(grads[1][1][name], g, msg=name)


@pytest.mark.parametrize("interval", [1, 4, 16])
def test_semi_dynamic_interval_divides_the_eigendecompositions(interval: int) -> None:
    cfg = V3Config.from_preset("tiny", graph={"use_dynamic_pe": True, "semi_dynamic_interval": interval})
    model = V3Detector(cfg)
    before = model.graph_pe.eig_calls
    with torch.no_grad():
        model(torch.randn(2, 19, T))
    assert model.graph_pe.eig_calls - before == 2 * N_FRAMES // interval


def test_static_pe_runs_no_eigendecomposition_per_forward() -> None:
    model = V3Detector(V3Config.from_preset("tiny", graph={"use_dynamic_pe": False}))
    before = model.graph_pe.eig_calls
    with torch.no_grad():
        model(torch.randn(1, 19, T))
    assert model.graph_pe.eig_calls == before


def _poison(module: torch.nn.Module, args: object, output: torch.Tensor) -> torch.Tensor:
    output = output.clone()
    output.view(-1)[0] = float("nan")
    return output


def test_nan_debug_names_the_first_module_with_a_non_finite_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGB_NAN_DEBUG", raising=False)
    torch.manual_seed(0)
    model = V3Detector(V3Config.from_preset("tiny", debug_nan=True))
    handle = model.graph.convs[0].register_forward_hook(_poison)
    x = torch.randn(1, 19, T)
    with pytest.raises(NonFiniteError, match=r"'graph\.convs\.0' \(SSGConv\).*inputs were finite") as info:
        model(x)
    assert info.value.module == "graph.convs.0"
    handle.remove()
    # A bad weight: the TCN's first convolution is named, not something downstream.
    with torch.no_grad():
        model.tcn.layers[0].conv.weight[0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError) as info:
        model(x)
    assert info.value.module == "tcn.layers.0.conv"
    # NaN in the input is reported as such.
    with pytest.raises(NonFiniteError, match="input"):
        model(torch.full((1, 19, T), float("nan")))


def test_nan_debug_environment_variable_is_read_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = V3Detector(V3Config.from_preset("tiny"))  # debug_nan off in the config
    model.edge_stream.readout.register_forward_hook(_poison)
    x = torch.randn(1, 19, T)
    monkeypatch.delenv("BGB_NAN_DEBUG", raising=False)
    model(x)  # no check: a NaN goes through silently (it is then caught by the training loop's loss check)
    monkeypatch.setenv("BGB_NAN_DEBUG", "1")
    with pytest.raises(NonFiniteError) as info:
        model(x)
    assert info.value.module == "edge_stream.readout"
    model.config.debug_nan = True
    monkeypatch.setenv("BGB_NAN_DEBUG", "0")  # the variable overrides the config both ways
    model(x)
    # Hooks are removed after each debugged forward.
    assert all(not m._forward_hooks for m in model.modules() if m is not model.edge_stream.readout)


def test_presets_and_overrides() -> None:
    tiny, base = V3Config.from_preset("tiny"), V3Config.from_preset("base")
    assert base == V3Config(preset="base")
    assert (base.node.d_model, base.node.d_state, base.node.expand, base.node.headdim, base.node.n_layers) == (
        64, 16, 2, 8, 6,
    )  # fmt: skip
    assert (base.edge.d_model, base.edge.d_state, base.edge.n_layers) == (16, 8, 2)
    g = base.graph
    assert (g.n_layers, g.hops, g.alpha, g.pe_k, g.top_k, g.threshold) == (2, 2, 0.05, 16, 3, 1e-4)
    assert base.head_width == 512 and base.tcn.widths[-1] == 512
    assert tiny.node.n_layers < base.node.n_layers and tiny.node.d_model < base.node.d_model
    # Keys next to the preset override it at any depth; the rest of the preset stays.
    over = V3Config.from_mapping({"preset": "tiny", "graph": {"use_dynamic_pe": False}, "node": {"n_layers": 2}})
    assert over.graph.use_dynamic_pe is False and over.graph.pe_k == tiny.graph.pe_k
    assert over.node.n_layers == 2 and over.node.d_model == tiny.node.d_model
    assert V3Config.from_mapping(over.to_dict()) == over
    assert yaml.safe_load(yaml.safe_dump(over.to_dict())) == over.to_dict()  # plain types: checkpoints, logs
    with pytest.raises(pydantic.ValidationError, match="semi_dynamic_intervall"):
        V3Config.from_mapping({"graph": {"semi_dynamic_intervall": 4}})
    with pytest.raises(pydantic.ValidationError, match="headdim"):
        V3Config.from_mapping({"node": {"d_model": 12, "headdim": 16}})
    with pytest.raises(ValueError, match="unknown model preset"):
        V3Config.from_preset("huge")


def test_load_v3_config_from_yaml(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("data: {anything: 1}\nmodel:\n  architecture: v3\n  preset: tiny\n  graph:\n    pe_k: 4\n")
    cfg = load_v3_config(good)
    assert cfg.preset == "tiny" and cfg.graph.pe_k == 4
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  preset: tiny\n  graph:\n    top_k: 0\n    colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_v3_config(bad)
    text = "\n".join(info.value.problems)
    assert "model.graph.top_k" in text and "model.graph.colour: unknown key" in text
    with pytest.raises(ConfigError, match="not a preset"):
        load_v3_config(tmp_path / "missing.yaml")


def test_base_preset_builds_and_runs_a_short_input() -> None:
    torch.manual_seed(0)
    model = build_v3("base").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 19, 16 * 48), per_sample=True)
    assert out.shape == (1, 16 * 48) and torch.isfinite(out).all()


def test_macs_are_counted_per_component(tiny: V3Detector) -> None:
    macs = macs_per_window(tiny, torch.randn(2, 19, T))
    for name in ("tcn", "projection", "node_stream", "edge_stream", "graph", "head"):
        assert macs[name] > 0, name
    assert macs["total"] >= sum(v for k, v in macs.items() if k != "total") * 0.99
    # Per window: a batch of 2 counts the same as a batch of 1.
    assert macs_per_window(tiny, torch.randn(1, 19, T))["total"] == macs["total"]


def test_model_info_cli_prints_components_and_backend(tmp_path: Path) -> None:
    app = typer.Typer()
    model_info_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """Root with one sub-command (keeps the sub-command name on the command line)."""

    runner = CliRunner()
    result = runner.invoke(app, ["model-info", "tiny", "--window-s", "4"])
    assert result.exit_code == 0, result.output
    for word in ("tcn", "node_stream", "edge_stream", "graph", "head", "total", "Mamba backend"):
        assert word in result.output
    assert mamba_backend(build_v3("tiny")) in result.output
    for name in ("ICTAL_CPU_SCAN", "ICTAL_BLOCK_WORKERS"):  # refused in one line, not as a traceback
        bad_env = runner.invoke(app, ["model-info", "tiny", "--window-s", "4"], env={name: "maybe"})
        assert bad_env.exit_code == 1 and f"{name}='maybe'" in bad_env.output and "Traceback" not in bad_env.output
    expected = f"{parameter_counts(build_v3('tiny'))['total']:,}"
    assert expected in result.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  preset: tiny\n  graph: {use_dynamic_pe: false}\n")
    result = runner.invoke(app, ["model-info", str(cfg), "--window-s", "4"])
    assert result.exit_code == 0 and "static" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  nodes: {}\n")
    result = runner.invoke(app, ["model-info", str(bad)])
    assert result.exit_code == 1 and "model.nodes: unknown key" in result.output


@pytest.mark.parametrize("streamable", [False, True])
def test_bf16_autocast_runs_without_dtype_warnings(streamable: bool) -> None:
    # The pre-norms normalise in float32 under autocast: no unfused-path warning, finite gradients.
    import warnings

    torch.manual_seed(0)
    model = build_v3(V3Config.from_preset("tiny", streamable=streamable))
    seen: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, torch.nn.RMSNorm):
            module.register_forward_hook(lambda _m, args, _out: seen.append(args[0].dtype))
    x = torch.randn(2, 19, 2048)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(x).float().square().mean()
        loss.backward()
    assert seen and set(seen) == {torch.float32}  # every pre-norm saw a float32 input (the warning is once per process)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
