"""Streaming: the streamable V3 (forward_chunk), the scorers, and `ictal stream` against `ictal predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ictal.cli.main import app
from ictal.config.schema import IctalConfig, config_from_dict
from ictal.infer.predict import PredictConfig, predict_recording, resolve_threshold
from ictal.infer.scorers import ContinuousScorer, WindowedScorer, make_scorer, score_signal
from ictal.infer.stream import StreamEvent, stream_recording
from ictal.io.annotations import intervals_to_mask
from ictal.io.channels import CANONICAL_19
from ictal.io.edf import read_edf
from ictal.io.edf_write import write_edf
from ictal.models.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
from ictal.models.config import V3Config
from ictal.models.line_length import line_length_trace
from ictal.models.v3 import V3Detector, build_v3
from ictal.post.config import PostConfig
from ictal.post.events import detect_events
from ictal.signal.chunked import ArraySource, OnlinePreprocessor, preprocess_chunked
from ictal.signal.preprocess import PreprocessConfig, preprocess
from ictal.synthetic.signal import SOURCE_CHANNELS, synthesize_recording

WINDOW, STRIDE = 2560, 1280  # 10 s / 5 s at 256 Hz: short windows keep the tests fast


def _model(preset: str = "tiny", streamable: bool = True, seed: int = 0) -> V3Detector:
    torch.manual_seed(seed)
    return build_v3(V3Config.from_preset(preset, streamable=streamable)).eval()


def _edf(path: Path, seconds: int, rate: float = 250.0, seed: int = 1) -> Path:
    rec = synthesize_recording(seconds, rate, 2, np.random.default_rng(seed))
    rows = [SOURCE_CHANNELS.index(c) for c in CANONICAL_19]
    return write_edf(path, list(rec.data[rows]), rate, [f"EEG {c.upper()}-REF" for c in CANONICAL_19])


def _config(streamable: bool) -> IctalConfig:
    return config_from_dict(
        {"data": {"window_s": 10, "stride_s": 5}, "model": {"preset": "tiny", "streamable": streamable}}
    )


def _checkpoint(tmp_path: Path, streamable: bool) -> Path:
    cfg = _config(streamable)
    model = _model(streamable=streamable)
    state = {
        "format": CHECKPOINT_FORMAT, "kind": "best", "config": cfg.model_dump(mode="json"),
        "model": model.state_dict(), "epoch": 1, "step": 1,
    }  # fmt: skip
    return save_checkpoint(tmp_path / f"run{int(streamable)}" / "best.pt", state)


def _results_json(path: Path, theta: float) -> Path:
    """A dev results.json holding only the thresholds (what --threshold-from reads)."""
    thresholds = {f"threshold_at_{t}fa": theta for t in ("10", "5", "2.5", "1")}
    path.write_text(json.dumps({"split": "dev", **thresholds}))
    return path


# ------------------------------------------------------------------------------------------ streamable V3


@pytest.mark.parametrize("preset", ["tiny", "base"])
def test_forward_chunk_equals_one_forward_pass(preset: str) -> None:
    model = _model(preset)
    g = model.stream_granularity
    n = 6 * g + 16 * 3  # the last chunk is partial (not a multiple of the granularity)
    x = torch.randn(1, 19, n)
    with torch.no_grad():
        whole = model(x)
        state, parts = None, []
        for a, b in ((0, g), (g, 4 * g), (4 * g, 6 * g), (6 * g, n)):
            logits, state = model.forward_chunk(x[..., a:b], state)
            parts.append(logits)
    assert state is not None and state.frames == n // 16 and state.closed
    assert torch.cat(parts, -1).shape == whole.shape
    assert (torch.cat(parts, -1) - whole).abs().max().item() <= 1e-5
    # What a stream carries is its own small memory, not views that keep a chunk's activations alive.
    carried = [*state.tcn, *(t for s in (*state.node, *state.edge) for t in (s.conv, s.ssm))]
    assert all(t.untyped_storage().nbytes() == t.numel() * t.element_size() for t in carried)


def test_streamable_model_is_causal() -> None:
    model = _model()
    g = model.stream_granularity
    x = torch.randn(1, 19, 8 * g)
    y = x.clone()
    y[..., 5 * g :] = torch.randn(1, 19, 3 * g) * 5  # a different future
    with torch.no_grad():
        a, b = model(x), model(y)
    cut = 5 * g // 16
    assert (a[:, :cut] - b[:, :cut]).abs().max().item() <= 1e-6  # the past: equal to float rounding (1.2e-7)
    assert (a[:, cut:] - b[:, cut:]).abs().max().item() > 0.05  # the future changed


def test_forward_chunk_is_refused_where_it_cannot_be_exact() -> None:
    bidirectional = _model(streamable=False)
    with pytest.raises(ValueError, match="model.streamable: true"):
        bidirectional.forward_chunk(torch.randn(1, 19, 512))
    model = _model()
    with torch.no_grad():
        _, state = model.forward_chunk(torch.randn(1, 19, model.stream_granularity + 16))  # partial: ends a stream
        with pytest.raises(ValueError, match="no chunk may follow"):
            model.forward_chunk(torch.randn(1, 19, 512), state)
        with pytest.raises(ValueError, match="multiple of 16"):
            model.forward_chunk(torch.randn(1, 19, 500))


def test_streamable_model_trains_every_parameter() -> None:
    model = _model().train()
    loss = model(torch.randn(2, 19, 1024)).square().mean()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert not any("mamba_reverse" in name for name, _ in model.named_parameters())


# ---------------------------------------------------------------------------------------------- scorers


def _push_in_pieces(scorer: WindowedScorer | ContinuousScorer, x: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts, i, held = [], 0, 0
    while i < x.shape[1]:
        n = int(rng.integers(100, 3000))
        parts.append(scorer.push(x[:, i : i + n]))
        held = max(held, scorer.buffered_samples)
        i += n
    parts.append(scorer.finish())
    assert held <= WINDOW + 3000  # a window plus one push, never the recording
    return np.concatenate(parts)


@pytest.mark.parametrize("n", [256 * 27 + 5, WINDOW, 1000])  # tail window, exactly one window, shorter
def test_windowed_scorer_gives_the_same_trace_whatever_the_pieces(n: int) -> None:
    model = _model(streamable=False)
    x = np.random.default_rng(n).standard_normal((19, n)).astype(np.float32)
    want = score_signal(model, x, window=WINDOW, stride=STRIDE, batch_size=4, chunk=n)  # one push
    got = _push_in_pieces(WindowedScorer(model, window=WINDOW, stride=STRIDE, batch_size=4), x)
    assert got.shape == want.shape and np.array_equal(got, want)  # same windows, batches and stitching
    one_by_one = _push_in_pieces(WindowedScorer(model, window=WINDOW, stride=STRIDE, batch_size=1), x, seed=1)
    assert np.abs(one_by_one - want).max() <= 1e-5  # other batch sizes: float rounding (1.5e-6 measured)


def test_continuous_scorer_equals_one_forward_pass() -> None:
    model = _model()
    n = 256 * 61 + 40  # not a whole number of frames: padded at the end, like the whole-recording forward
    x = np.random.default_rng(0).standard_normal((19, n)).astype(np.float32)
    padded = torch.from_numpy(np.pad(x, ((0, 0), (0, -n % 16))))[None]
    with torch.no_grad():
        want = torch.sigmoid(model(padded))[0].numpy()
    got = _push_in_pieces(ContinuousScorer(model), x)
    assert got.shape == (-(-n // 16),)
    assert np.abs(got - want).max() <= 1e-5
    assert make_scorer(model, window=WINDOW, stride=STRIDE).mode == "continuous"
    assert make_scorer(model, window=WINDOW, stride=STRIDE, mode="windows").mode == "windows"
    with pytest.raises(ValueError, match="streamable"):
        ContinuousScorer(_model(streamable=False))


def test_score_signal_is_one_pass_for_a_streamable_model() -> None:
    x = np.random.default_rng(5).standard_normal((19, 256 * 23)).astype(np.float32)
    streamable = _model()
    with torch.no_grad():
        one_pass = torch.sigmoid(streamable(torch.from_numpy(x)[None]))[0].numpy()
    got = score_signal(streamable, x, window=WINDOW, stride=STRIDE, chunk=3000)
    assert np.abs(got - one_pass).max() <= 1e-5


# -------------------------------------------------------------------------------------- stream vs predict


@pytest.mark.parametrize("streamable", [False, True])
def test_stream_events_equal_predict_events(tmp_path: Path, streamable: bool) -> None:
    edf = _edf(tmp_path / "rec.edf", 80)
    cfg = _config(streamable)
    model = _model(streamable=streamable)
    pred = predict_recording(model, edf, cfg, resolve_threshold(cfg.post), predict=PredictConfig(chunk_s=37.0))
    # An untrained model hovers near 0.5: a threshold near the trace's median gives several events.
    threshold = resolve_threshold(cfg.post, _results_json(tmp_path / "r.json", float(np.quantile(pred.trace, 0.55))))
    pred.events = detect_events(pred.trace, 16, threshold.post)  # what predict_recording does at this threshold
    assert len(pred.events) >= 2

    emitted: list[StreamEvent] = []
    result = stream_recording(
        model, edf, preprocess=cfg.preprocess, post=threshold.post, window=WINDOW, stride=STRIDE, chunk_s=6.0,
        stats_mode="recording", keep_trace=True, on_event=emitted.append,
    )  # fmt: skip
    assert result.trace is not None and np.abs(result.trace - pred.trace).max() <= 1e-5
    got = [item.event for item in result.events]
    assert [(e.start_s, e.stop_s) for e in got] == [(e.start_s, e.stop_s) for e in pred.events]
    np.testing.assert_allclose([e.confidence for e in got], [e.confidence for e in pred.events], atol=1e-6)
    assert emitted == result.events
    for item in result.events:
        assert item.emitted_s >= item.event.stop_s - 1e-9 and item.latency_s >= 0
        assert item.emitted_s <= result.duration_s
    assert ("continuous" in result.scoring) == streamable


def test_realtime_paces_the_chunks_at_the_recording_speed(tmp_path: Path) -> None:
    edf = _edf(tmp_path / "rec.edf", 30)
    cfg = _config(True)
    waits: list[float] = []
    stream_recording(
        _model(), edf, preprocess=cfg.preprocess, post=cfg.post, window=WINDOW, stride=STRIDE, chunk_s=5.0,
        realtime=True, stats_mode="recording", sleep=waits.append,
    )  # fmt: skip
    # Each chunk waits until its last sample would have been acquired (the fake sleep returns at once, so each
    # wait is that sample's time minus the little time spent so far).
    assert len(waits) == 6 and waits == sorted(waits)
    assert 20.0 < waits[-1] <= 30.0 and all(5.0 * (k + 1) - w < 3.0 for k, w in enumerate(waits))


def test_calibrated_statistics_change_events_only_a_little() -> None:
    """Measures what a live stream's z-score (first 5 min, frozen) does to events against the whole-recording
    z-score of `predict`, with the line-length detector on 20 min of synthetic EEG, seeds 0-3: trace max |diff|
    0.009-0.019, event counts within 2, event-time Jaccard 0.68, 0.86, 0.90, 0.84 (seeds 4-5: 0.69, 0.91)."""
    jaccards = []
    for seed in range(4):
        rec = synthesize_recording(1200, 256.0, 3, np.random.default_rng(seed))
        x = rec.data[[SOURCE_CHANNELS.index(c) for c in CANONICAL_19]]
        cfg = PreprocessConfig()
        offline = preprocess_chunked(ArraySource(x, 256.0), cfg, chunk_s=300.0)
        online = OnlinePreprocessor(256.0, 19, cfg, calibration_s=300.0)
        pushed = [online.push(x[:, a : a + 256]) for a in range(0, x.shape[1], 256)]
        live = np.concatenate([*pushed, online.finish()], 1)
        trace_off, trace_live = line_length_trace(offline), line_length_trace(live)
        theta = float(np.quantile(trace_off, 0.97))
        post = PostConfig(tau_on=theta, tau_off=theta - 0.02)
        ev_off, ev_live = detect_events(trace_off, 16, post), detect_events(trace_live, 16, post)
        n = trace_off.size
        mask_off = intervals_to_mask([(e.start_s, e.stop_s) for e in ev_off], n, 16)
        mask_live = intervals_to_mask([(e.start_s, e.stop_s) for e in ev_live], n, 16)
        jaccards.append((mask_off & mask_live).sum() / max((mask_off | mask_live).sum(), 1))
        assert np.abs(trace_off - trace_live).max() < 0.05
        assert abs(len(ev_off) - len(ev_live)) <= 2
    assert min(jaccards) >= 0.6 and float(np.median(jaccards)) >= 0.75, jaccards


def test_stream_cli_prints_events_with_their_latency(tmp_path: Path) -> None:
    checkpoint = _checkpoint(tmp_path, streamable=True)
    edf = _edf(tmp_path / "rec.edf", 40)
    results = _results_json(tmp_path / "dev.json", 0.0)  # every frame above threshold: one event, the whole file
    res = CliRunner().invoke(
        app, ["stream", str(checkpoint), str(edf), "--chunk-s", "4", "--stats", "recording",
              "--threshold-from", str(results), "--device", "cpu"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "seizure" in res.output and "latency" in res.output and "1 event(s) in 40.0 s" in res.output
    assert "state carried across chunks" in res.output
    bad = CliRunner().invoke(app, ["stream", str(checkpoint), str(edf), "--stats", "future"])
    assert bad.exit_code == 2 and "calibration" in bad.output
    missing = CliRunner().invoke(app, ["stream", str(checkpoint), str(tmp_path / "nope.edf"), "--device", "cpu"])
    assert missing.exit_code == 1 and "nope.edf" in missing.output


def test_predict_on_a_recording_equals_the_whole_recording_chain(tmp_path: Path) -> None:
    """predict's chunked pipeline against preprocess() + score_signal() of the whole file (windowed model)."""
    edf = _edf(tmp_path / "rec.edf", 70, rate=400.0)
    cfg = _config(False)
    model = _model(streamable=False)
    pred = predict_recording(model, edf, cfg, resolve_threshold(cfg.post), predict=PredictConfig(chunk_s=13.0))
    whole = preprocess(read_edf(edf).data, 400.0, cfg.preprocess)
    want = score_signal(model, whole, window=WINDOW, stride=STRIDE, batch_size=8, chunk=whole.shape[1])
    assert np.abs(pred.trace - want).max() <= 1e-6
