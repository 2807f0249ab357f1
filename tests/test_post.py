"""Stitching window outputs and post-processing probability traces into seizure events (ictal.post)."""

from __future__ import annotations

import math

import numpy as np
import pydantic
import pytest
import torch
from scipy import ndimage

from ictal.post.config import PostConfig
from ictal.post.events import SeizureEvent, detect_events, events_to_annotation, run_confidences
from ictal.post.runs import (
    bridge_gaps,
    drop_short_runs,
    hysteresis_runs,
    runs_of,
    runs_to_mask,
    split_long_runs,
)
from ictal.post.stitch import TraceStitcher, stitch_windows, window_starts
from ictal.post.streaming import PostProcessor

RATE = 16.0


def plain(**overrides: object) -> PostConfig:
    """A config with every step after hysteresis switched off, then ``overrides``."""
    base: dict[str, object] = dict(opening_s=0.0, closing_s=0.0, min_duration_s=0.0, merge_gap_s=0.0)
    base.update(overrides)
    return PostConfig(**base)  # type: ignore[arg-type]


def trace_with(segments: list[tuple[float, float]], rate: float = RATE, base: float = 0.1) -> np.ndarray:
    """A trace made of (seconds, value) segments, in order."""
    return np.concatenate([np.full(round(sec * rate), val) for sec, val in [(0.0, base)] + segments])


def synth_trace(n: int, rate: float = RATE, seed: int = 0) -> np.ndarray:
    """Noisy background, short spikes and seizure-like plateaus of 0.2 s to 15 min, values in [0, 1]."""
    rng = np.random.default_rng(seed)
    w = max(1, int(rate))
    noise = np.convolve(rng.standard_normal(n), np.ones(w) / w, mode="same") * math.sqrt(w) * 0.12
    p = 0.3 + noise
    for _ in range(max(2, int(n / rate / 600))):
        length = int(rng.uniform(0.2, 900) * rate)
        a = int(rng.integers(0, max(1, n - length)))
        p[a : a + length] += rng.uniform(0.45, 0.7)
    return np.clip(p, 0.0, 1.0)


def naive_stitch(windows: np.ndarray, starts: np.ndarray, n_total: int) -> np.ndarray:
    total = np.zeros(n_total + windows.shape[1])
    count = np.zeros(n_total + windows.shape[1])
    for w, s in zip(windows, starts, strict=True):
        total[s : s + windows.shape[1]] += w
        count[s : s + windows.shape[1]] += 1
    return total[:n_total] / count[:n_total]


# --------------------------------------------------------------------------------------------- stitching


def test_stitch_overlap_average_exact() -> None:
    windows = np.array([[1.0] * 4, [2.0] * 4, [3.0] * 4])
    trace = stitch_windows(windows, np.array([0, 2, 4]), 8)
    np.testing.assert_array_equal(trace, [1, 1, 1.5, 1.5, 2.5, 2.5, 3, 3])
    assert trace.dtype == np.float64
    # Windows that are not constant: each value is the mean of exactly the windows covering it.
    windows = np.arange(12, dtype=np.float32).reshape(3, 4)
    trace = stitch_windows(windows, np.array([0, 1, 5]), 9)
    np.testing.assert_array_equal(trace, [0, 2.5, 3.5, 4.5, 7, 8, 9, 10, 11])
    assert trace.dtype == np.float32


def test_window_starts_cover_tail() -> None:
    np.testing.assert_array_equal(window_starts(100, 30, 10), [0, 10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_array_equal(window_starts(105, 30, 10), [0, 10, 20, 30, 40, 50, 60, 70, 75])
    np.testing.assert_array_equal(window_starts(20, 30, 10), [0])
    starts = window_starts(1000, 320, 160, align=16)
    assert np.all(starts % 16 == 0)
    assert starts[-1] + 320 >= 1000 > starts[-1] + 320 - 16
    for n in (1, 29, 30, 31, 99, 100, 101, 1234):
        s = window_starts(n, 30, 10)
        covered = np.zeros(n, dtype=bool)
        for a in s:
            covered[a : a + 30] = True
        assert covered.all(), n
        assert np.all(s < n)
    with pytest.raises(ValueError, match="multiples of align"):
        window_starts(1000, 320, 100, align=16)
    with pytest.raises(ValueError, match="stride"):
        window_starts(1000, 320, 0)


@pytest.mark.parametrize(
    ("length", "stride", "n_total"), [(960, 160, 16_000 + 7), (15360, 2560, 200_001), (50, 7, 333)]
)
def test_stitch_matches_naive_and_covers_tail(length: int, stride: int, n_total: int) -> None:
    """Per-frame (960) and per-sample (15360) windows, a last window placed at the end, irregular strides."""
    starts = window_starts(n_total, length, stride)
    windows = np.random.default_rng(1).random((starts.size, length))
    trace = stitch_windows(windows, starts, n_total)
    assert trace.shape == (n_total,)
    np.testing.assert_allclose(trace, naive_stitch(windows, starts, n_total), rtol=1e-13, atol=0)
    # The tail is covered by the last window alone.
    tail = n_total - (starts[-2] + length) if starts.size > 1 else 0
    if tail > 0:
        np.testing.assert_array_equal(trace[-tail:], windows[-1, -tail:])


def test_stitch_frames_from_sample_starts() -> None:
    """Sample-level starts aligned to 16 map to frame starts; the frame trace covers ceil(n / 16) frames."""
    n_samples = 256 * 200 + 5
    starts = window_starts(n_samples, 15360, 2560, align=16)
    n_frames = -(-n_samples // 16)
    windows = np.random.default_rng(2).random((starts.size, 960)).astype(np.float32)
    trace = stitch_windows(windows, starts // 16, n_frames)
    assert trace.shape == (n_frames,)
    np.testing.assert_allclose(trace, naive_stitch(windows, starts // 16, n_frames), rtol=1e-6)


def test_stitch_padded_window_and_gaps() -> None:
    # A recording shorter than one window: the padded part is discarded.
    trace = stitch_windows(np.array([[0.2, 0.4, 0.6, 0.8]]), np.array([0]), 3)
    np.testing.assert_array_equal(trace, [0.2, 0.4, 0.6])
    # Indices no window covers get fill_value.
    trace = stitch_windows(np.ones((2, 2)), np.array([0, 4]), 7, fill_value=-1.0)
    np.testing.assert_array_equal(trace, [1, 1, -1, -1, 1, 1, -1])
    # torch input.
    trace = stitch_windows(torch.ones(2, 4, dtype=torch.bfloat16), torch.tensor([0, 2]), 6)
    np.testing.assert_array_equal(trace, np.ones(6))


def test_stitch_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="frames"):
        stitch_windows(np.ones((2, 960)), np.array([0, 2560]), 1000)  # sample starts, frame outputs
    with pytest.raises(ValueError, match=r"\(W, L\)"):
        stitch_windows(np.ones(960), np.array([0]), 1000)
    with pytest.raises(ValueError, match="one per window"):
        stitch_windows(np.ones((2, 4)), np.array([0]), 10)
    with pytest.raises(ValueError, match=">= 0"):
        stitch_windows(np.ones((1, 4)), np.array([-1]), 10)


@pytest.mark.parametrize(("length", "stride", "n_total"), [(960, 160, 20_000 + 3), (15360, 2560, 150_000), (8, 3, 5)])
def test_trace_stitcher_equals_batch(length: int, stride: int, n_total: int) -> None:
    starts = window_starts(n_total, length, stride)
    windows = np.random.default_rng(3).random((starts.size, length)).astype(np.float32)
    batch = stitch_windows(windows, starts, n_total)
    stitcher = TraceStitcher(length)
    parts = []
    for w, s in zip(windows, starts, strict=True):
        before = stitcher.emitted
        part = stitcher.push(w, s)
        assert part.size == s - before  # everything before the new window's start is final
        parts.append(part)
    parts.append(stitcher.finish(n_total))
    streamed = np.concatenate(parts)
    assert streamed.dtype == batch.dtype
    np.testing.assert_array_equal(streamed, batch)  # bit for bit


def test_trace_stitcher_gaps_and_order() -> None:
    windows = np.ones((2, 2))
    stitcher = TraceStitcher(2, n_total=7, fill_value=-1.0)
    parts = [stitcher.push(windows[0], 0), stitcher.push(windows[1], 4), stitcher.finish()]
    np.testing.assert_array_equal(np.concatenate(parts), stitch_windows(windows, np.array([0, 4]), 7, -1.0))
    stitcher = TraceStitcher(2)
    stitcher.push(np.ones(2), 5)
    with pytest.raises(ValueError, match="in order"):
        stitcher.push(np.ones(2), 3)
    with pytest.raises(ValueError, match="shape"):
        stitcher.push(np.ones(3), 6)


# --------------------------------------------------------------------------------------------- run arithmetic


def test_runs_of_and_mask_roundtrip() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        mask = rng.random(int(rng.integers(1, 60))) < 0.5
        starts, stops = runs_of(mask)
        np.testing.assert_array_equal(runs_to_mask((starts, stops), mask.size), mask)
        assert np.all(stops > starts)
    assert runs_of(np.zeros(0, dtype=bool))[0].size == 0


@pytest.mark.parametrize("size", [2, 3, 11, 31])
def test_opening_and_closing_equal_scipy_on_padded_mask(size: int) -> None:
    rng = np.random.default_rng(size)
    element = np.ones(size, dtype=bool)
    for _ in range(30):
        n = int(rng.integers(1, 300))
        # Runs and gaps of random lengths, some shorter and some longer than the element.
        mask = np.repeat(rng.random(n) < 0.5, rng.integers(1, 2 * size + 2, n))
        padded = np.pad(mask, size + 1)
        crop = slice(size + 1, size + 1 + mask.size)
        opened = ndimage.binary_opening(padded, element)
        closed = ndimage.binary_closing(opened, element)
        runs = drop_short_runs(runs_of(mask), size)
        np.testing.assert_array_equal(runs_to_mask(runs, mask.size), opened[crop])
        runs = bridge_gaps(runs, size)
        np.testing.assert_array_equal(runs_to_mask(runs, mask.size), closed[crop])


def test_split_long_runs_tiles_with_equal_pieces() -> None:
    starts, stops = split_long_runs((np.array([0, 5000]), np.array([1300, 5100])), 600)
    np.testing.assert_array_equal(starts, [0, 433, 866, 5000])
    np.testing.assert_array_equal(stops, [433, 866, 1300, 5100])


# --------------------------------------------------------------------------------------------- hysteresis


def test_hysteresis_bump_reaching_on_threshold_is_one_event() -> None:
    # Rise to 0.8 (above tau_off, below tau_on), peak 0.9, dip to 0.79, fall below 0.78.
    trace = trace_with([(2, 0.8), (1, 0.9), (3, 0.79), (2, 0.85), (2, 0.5)])
    events = detect_events(trace, RATE, plain())
    assert len(events) == 1
    assert (events[0].start_s, events[0].stop_s) == (0.0, 8.0)  # the whole stretch above tau_off


def test_hysteresis_bump_peaking_below_on_threshold_is_none() -> None:
    trace = trace_with([(2, 0.8), (10, 0.85), (2, 0.5)])
    assert detect_events(trace, RATE, plain()) == []
    assert len(detect_events(trace, RATE, plain(tau_on=0.85))) == 1  # tau_on is inclusive


def test_hysteresis_dip_below_off_threshold_splits_unless_bridged() -> None:
    trace = trace_with([(1, 0.1), (3, 0.9), (0.5, 0.7), (3, 0.8), (1, 0.1)])
    # The second stretch never reaches tau_on: after the dip it is not part of the event.
    assert [(e.start_s, e.stop_s) for e in detect_events(trace, RATE, plain())] == [(1.0, 4.0)]
    bridged = detect_events(trace, RATE, plain(min_off_s=0.5625))  # dips shorter than 9 frames bridged
    assert [(e.start_s, e.stop_s) for e in bridged] == [(1.0, 7.5)]
    not_bridged = detect_events(trace, RATE, plain(min_off_s=0.5))  # the 8-frame dip is not shorter than 8
    assert [(e.start_s, e.stop_s) for e in not_bridged] == [(1.0, 4.0)]


def test_hysteresis_min_on_needs_a_long_enough_trigger() -> None:
    trace = trace_with([(1, 0.1), (0.25, 0.95), (3, 0.8), (1, 0.1)])  # 4 frames above tau_on
    assert len(detect_events(trace, RATE, plain(min_on_s=0.25))) == 1
    assert detect_events(trace, RATE, plain(min_on_s=0.3125)) == []
    starts, stops = hysteresis_runs(trace, 0.86, 0.78, min_on=5)
    assert starts.size == 0


def test_nan_and_bad_input_rejected() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        detect_events(np.array([0.1, np.nan, 0.9]), RATE)
    with pytest.raises(ValueError, match="1-D"):
        detect_events(np.zeros((2, 10)), RATE)
    with pytest.raises(ValueError, match="rate"):
        detect_events(np.zeros(10), 0.0)


# --------------------------------------------------------------------------------------------- morphology, durations


def test_opening_removes_short_spikes() -> None:
    # 10 frames is shorter than the 11-frame opening; 11 frames survive it.
    trace = trace_with([(5, 0.1), (10 / 16, 0.95), (5, 0.1), (11 / 16, 0.95), (5, 0.1)])
    events = detect_events(trace, RATE, PostConfig(min_duration_s=0.0))
    assert [(e.start_s, e.stop_s) for e in events] == [(10 + 10 / 16, 10 + 21 / 16)]


def test_closing_fills_short_gaps() -> None:
    # Gaps of 30 frames (filled by the 31-frame closing) and 32 frames (not filled, not merged).
    trace = trace_with([(5, 0.1), (2, 0.95), (30 / 16, 0.1), (2, 0.95), (2, 0.1), (2, 0.95), (5, 0.1)])
    events = detect_events(trace, RATE, PostConfig(min_duration_s=0.0, merge_gap_s=0.0))
    assert [(e.start_s, e.stop_s) for e in events] == [(5.0, 9 + 30 / 16), (11 + 30 / 16, 13 + 30 / 16)]


def test_min_duration() -> None:
    short = trace_with([(5, 0.1), (2.9375, 0.95), (5, 0.1)])
    exact = trace_with([(5, 0.1), (3.0, 0.95), (5, 0.1)])
    assert detect_events(short, RATE) == []
    assert [(e.start_s, e.stop_s) for e in detect_events(exact, RATE)] == [(5.0, 8.0)]


def test_max_duration_split_or_drop() -> None:
    trace = trace_with([(10, 0.1), (1300, 0.95), (10, 0.1), (100, 0.9), (10, 0.1)])
    events = detect_events(trace, RATE)
    assert len(events) == 4
    long_pieces = events[:3]
    assert long_pieces[0].start_s == 10.0 and long_pieces[-1].stop_s == 1310.0
    for a, b in zip(long_pieces[:-1], long_pieces[1:], strict=True):
        assert a.stop_s == b.start_s  # touching pieces tile the event
    assert all(e.duration_s <= 600.0 for e in long_pieces)
    assert max(e.duration_s for e in long_pieces) - min(e.duration_s for e in long_pieces) <= 1 / RATE
    dropped = detect_events(trace, RATE, PostConfig(long_event_policy="drop"))
    assert [(e.start_s, e.stop_s) for e in dropped] == [(1320.0, 1420.0)]


def test_merge_gaps_after_duration_filter() -> None:
    # A 31-frame gap survives closing (31) but is merged (< 2 s = 32 frames); a 32-frame gap is not.
    trace = trace_with([(5, 0.1), (4, 0.95), (31 / 16, 0.1), (4, 0.95), (2, 0.1), (4, 0.95), (5, 0.1)])
    events = detect_events(trace, RATE)
    assert [(e.start_s, e.stop_s) for e in events] == [(5.0, 13 + 31 / 16), (15 + 31 / 16, 19 + 31 / 16)]
    # A 2 s fragment is dropped by the minimum duration before merging, so it does not join its neighbour.
    trace = trace_with([(5, 0.1), (4, 0.95), (31 / 16, 0.1), (2, 0.95), (5, 0.1)])
    assert [(e.start_s, e.stop_s) for e in detect_events(trace, RATE)] == [(5.0, 9.0)]


# --------------------------------------------------------------------------------------------- confidence


def test_confidence_modes() -> None:
    rng = np.random.default_rng(5)
    trace = trace_with([(5, 0.1), (6, 0.95), (5, 0.1), (8, 0.9), (5, 0.1)])
    trace = np.clip(trace + np.where(trace > 0.5, rng.uniform(-0.05, 0.05, trace.size), 0.0), 0, 1)
    for mode, reduce in (
        ("mean", np.mean),
        ("peak", np.max),
        ("percentile", lambda x: np.percentile(x, 75.0)),
    ):
        events = detect_events(trace, RATE, PostConfig(confidence=mode, confidence_percentile=75.0))  # type: ignore[arg-type]
        assert len(events) == 2
        for ev in events:
            inside = trace[round(ev.start_s * RATE) : round(ev.stop_s * RATE)]
            assert ev.confidence == pytest.approx(float(reduce(inside)), abs=1e-12), mode


def test_run_confidences_percentile_matches_numpy_on_random_runs() -> None:
    rng = np.random.default_rng(6)
    trace = rng.random(500)
    bounds = np.sort(rng.choice(np.arange(1, 500), 40, replace=False))
    starts, stops = bounds[0::2], bounds[1::2]
    for q in (0.0, 12.5, 50.0, 90.0, 100.0):
        got = run_confidences(trace, (starts, stops), "percentile", q)
        want = [np.percentile(trace[a:b], q) for a, b in zip(starts, stops, strict=True)]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # Touching runs (split pieces) and a run ending at the trace's end.
    touching = (np.array([0, 100, 250]), np.array([100, 250, 500]))
    np.testing.assert_allclose(
        run_confidences(trace, touching, "mean"), [trace[:100].mean(), trace[100:250].mean(), trace[250:].mean()]
    )
    np.testing.assert_array_equal(
        run_confidences(trace, touching, "peak"), [trace[:100].max(), trace[100:250].max(), trace[250:].max()]
    )
    with pytest.raises(ValueError, match="confidence mode"):
        run_confidences(trace, touching, "median")


def test_sizes_are_in_seconds_so_256hz_equals_16hz() -> None:
    trace = synth_trace(16 * 3600, seed=7)
    # Split points are whole samples of each rate, so keep events unsplit here.
    config = PostConfig(max_duration_s=3600.0)
    frames = detect_events(trace, 16.0, config)
    samples = detect_events(np.repeat(trace, 16), 256.0, config)
    assert len(frames) > 3
    assert [(e.start_s, e.stop_s) for e in frames] == [(e.start_s, e.stop_s) for e in samples]
    np.testing.assert_allclose([e.confidence for e in frames], [e.confidence for e in samples], atol=1e-12)


def test_torch_trace_accepted() -> None:
    trace = trace_with([(5, 0.1), (6, 0.95), (5, 0.1)])
    assert detect_events(torch.tensor(trace, dtype=torch.float16), RATE)[0].start_s == 5.0


# --------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize(
    "config",
    [
        PostConfig(),
        PostConfig(min_off_s=3.0, min_on_s=0.5, confidence="percentile", max_duration_s=120.0),
        PostConfig(long_event_policy="drop", confidence="peak", closing_s=5.0, merge_gap_s=0.0),
    ],
)
def test_streaming_equals_batch(config: PostConfig) -> None:
    trace = synth_trace(16 * 3 * 3600, seed=8)
    batch = detect_events(trace, RATE, config)
    assert len(batch) > 5
    for chunk in (1000, 960 * 10, 77_777, trace.size):
        post = PostProcessor(RATE, config)
        streamed: list[SeizureEvent] = []
        for i in range(0, trace.size, chunk):
            streamed += post.push(trace[i : i + chunk])
            assert post.samples_pending <= post.samples_seen
        streamed += post.finish()
        assert [(e.start_s, e.stop_s) for e in streamed] == [(e.start_s, e.stop_s) for e in batch], chunk
        # Same samples reduced the same way: confidences agree to float64 rounding at most.
        np.testing.assert_allclose([e.confidence for e in streamed], [e.confidence for e in batch], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("config", "gap_frames"),
    [
        (PostConfig(), 31),  # merged (< 32 frames), not closed
        (PostConfig(), 30),  # closed
        (PostConfig(min_off_s=4.0, closing_s=0.0, merge_gap_s=0.0), 63),  # bridged by hysteresis (< 64)
        (PostConfig(closing_s=6.0, merge_gap_s=0.0), 95),  # closed (< 96)
    ],
)
def test_streaming_equals_batch_at_the_longest_bridgeable_gap(config: PostConfig, gap_frames: int) -> None:
    """A quiet stretch one frame shorter than the longest bridgeable gap must not separate the pieces."""
    gap = gap_frames / RATE
    trace = trace_with([(5, 0.1), (4, 0.95), (gap, 0.5), (4, 0.9), (gap, 0.5), (4, 0.9), (gap + 1 / RATE, 0.2)])
    batch = detect_events(trace, RATE, config)
    assert len(batch) == 1  # every gap is bridged by one step or another
    for chunk in (1, 5, 16, 100):
        post = PostProcessor(RATE, config)
        streamed: list[SeizureEvent] = []
        for i in range(0, trace.size, chunk):
            streamed += post.push(trace[i : i + chunk])
        assert streamed + post.finish() == batch, chunk


def test_streaming_sample_by_sample_and_emits_early() -> None:
    trace = trace_with([(5, 0.1), (6, 0.95), (10, 0.1), (0.3, 0.9), (3, 0.1), (8, 0.9), (1, 0.5)])
    batch = detect_events(trace, RATE)
    post = PostProcessor(RATE)
    streamed: list[SeizureEvent] = []
    emitted_at: list[int] = []
    for i, value in enumerate(trace):
        new = post.push(np.array([value]))
        streamed += new
        emitted_at += [i] * len(new)
    streamed += post.finish()
    assert streamed == batch and len(batch) == 2
    # The first event (ends at 11 s) is emitted 2 s (the longest bridgeable gap) after it ends, not at the end.
    assert emitted_at == [round(13 * RATE) - 1]
    with pytest.raises(RuntimeError, match="after finish"):
        post.push(np.zeros(3))


# --------------------------------------------------------------------------------------------- annotation, config


def test_events_to_annotation() -> None:
    events = [SeizureEvent(10.0, 20.0, 0.91), SeizureEvent(99.5, 100.0625, 0.8)]
    ann = events_to_annotation(events, 100.0, "rec_s001_t000")
    assert ann.duration == 100.0 and ann.bname == "rec_s001_t000"
    rows = [(e.start, e.stop, e.label, e.confidence) for e in ann.events]
    assert rows == [
        (0.0, 10.0, "bckg", 1.0),
        (10.0, 20.0, "seiz", 0.91),
        (20.0, 99.5, "bckg", 1.0),
        (99.5, 100.0, "seiz", 0.8),
    ]
    assert ann.seizure_intervals() == [(10.0, 20.0), (99.5, 100.0)]
    assert [e.label for e in events_to_annotation([], 50.0, "x").events] == ["bckg"]


def test_post_config_validation() -> None:
    adapter = pydantic.TypeAdapter(PostConfig)
    assert adapter.validate_python({}) == PostConfig()
    assert adapter.validate_python({"tau_on": 0.9, "confidence": "peak"}).tau_on == 0.9
    with pytest.raises(pydantic.ValidationError, match="tau_of"):
        adapter.validate_python({"tau_of": 0.5})  # unknown key (typo)
    with pytest.raises(pydantic.ValidationError, match=r"tau_off.*tau_on"):
        adapter.validate_python({"tau_on": 0.7, "tau_off": 0.8})
    with pytest.raises(pydantic.ValidationError, match="min_duration_s"):
        adapter.validate_python({"min_duration_s": 700.0})
    with pytest.raises(pydantic.ValidationError, match="tau_on"):
        adapter.validate_python({"tau_on": 1.5, "tau_off": 0.5})
    with pytest.raises(pydantic.ValidationError, match="long_event_policy"):
        adapter.validate_python({"long_event_policy": "truncate"})
    with pytest.raises(ValueError, match=r"tau_off.*tau_on"):
        PostConfig(tau_on=0.5, tau_off=0.6)
    # A directly built config that breaks a field constraint is caught when used.
    with pytest.raises(pydantic.ValidationError, match="opening_s"):
        detect_events(np.zeros(100), RATE, PostConfig(opening_s=-1.0))
