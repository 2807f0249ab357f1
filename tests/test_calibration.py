"""AUROC and expected calibration error from binned counts (ictal.scoring.calibration)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from ictal.scoring.calibration import ProbabilityHistogram


def exact_auroc(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUROC on the raw scores, ties counted 1/2 (what sklearn's roc_auc_score gives)."""
    ranks = rankdata(probs)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def exact_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    index = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        inside = index == b
        if inside.any():
            total += inside.sum() / probs.size * abs(labels[inside].mean() - probs[inside].mean())
    return total


def scores(n: int, seed: int, separation: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping score distributions of the two classes, as a model would give."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    logits = rng.standard_normal(n) * 1.5 + np.where(labels, separation, -separation)
    return 1.0 / (1.0 + np.exp(-logits)), labels


@pytest.mark.parametrize(("seed", "separation"), [(0, 0.3), (1, 1.0), (2, 2.5)])
def test_auroc_close_to_exact(seed: int, separation: float) -> None:
    probs, labels = scores(60_000, seed, separation)
    hist = ProbabilityHistogram(1000)
    hist.update(probs, labels)
    assert hist.count == probs.size
    assert hist.auroc() == pytest.approx(exact_auroc(probs, labels), abs=1e-3)


def test_auroc_exact_when_scores_sit_in_bins() -> None:
    """Scores already quantised to bin centres: the binned AUROC is the exact (tie-aware) AUROC."""
    rng = np.random.default_rng(3)
    k = rng.integers(0, 50, 5000)
    labels = rng.random(5000) < k / 60
    probs = (k + 0.5) / 50  # many tied scores, one value per bin
    hist = ProbabilityHistogram(50)
    hist.update(probs, labels)
    assert hist.auroc() == pytest.approx(exact_auroc(probs, labels), abs=1e-12)
    perfect = ProbabilityHistogram()
    perfect.update(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect.auroc() == 1.0
    inverted = ProbabilityHistogram()
    inverted.update(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))
    assert inverted.auroc() == 0.0


def test_updates_merge_and_shapes() -> None:
    probs, labels = scores(12_000, 4)
    whole = ProbabilityHistogram()
    whole.update(probs, labels)
    parts = [ProbabilityHistogram() for _ in range(3)]
    # Batches of any shape, numpy and torch, bool and 0/1 labels.
    parts[0].update(probs[:4000].reshape(4, 1000), labels[:4000].reshape(4, 1000))
    parts[1].update(torch.tensor(probs[4000:8000], dtype=torch.float64), torch.tensor(labels[4000:8000]))
    parts[2].update(probs[8000:].reshape(2, 2, 1000), labels[8000:].astype(np.float32).reshape(2, 2, 1000))
    merged = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_array_equal(merged.positive, whole.positive)
    np.testing.assert_array_equal(merged.negative, whole.negative)
    np.testing.assert_allclose(merged.sum_p, whole.sum_p, rtol=1e-12)
    assert merged.auroc() == whole.auroc()
    with pytest.raises(ValueError, match="bins"):
        whole.merge(ProbabilityHistogram(10))


def test_edge_probabilities_land_in_end_bins() -> None:
    hist = ProbabilityHistogram(10)
    hist.update(np.array([0.0, 1.0, 0.999]), np.array([False, True, True]))
    assert hist.negative[0] == 1 and hist.positive[9] == 2


def test_ece_equals_exact_when_bins_nest() -> None:
    probs, labels = scores(30_000, 5)
    hist = ProbabilityHistogram(1500)  # a multiple of 15: every fine bin lies inside one coarse bin
    hist.update(probs, labels)
    assert hist.ece(15) == pytest.approx(exact_ece(probs, labels, 15), abs=1e-12)
    assert hist.ece(10) == pytest.approx(exact_ece(probs, labels, 10), abs=1e-12)
    # With 1000 fine bins, 15 coarse bins do not nest: fine bins are assigned by their centre.
    coarse = ProbabilityHistogram(1000)
    coarse.update(probs, labels)
    assert coarse.ece(15) == pytest.approx(exact_ece(probs, labels, 15), abs=2e-3)


def test_ece_of_calibrated_and_overconfident_predictions() -> None:
    rng = np.random.default_rng(6)
    probs = rng.random(200_000)
    calibrated = ProbabilityHistogram()
    calibrated.update(probs, rng.random(probs.size) < probs)
    assert calibrated.ece() < 0.01
    overconfident = ProbabilityHistogram()
    overconfident.update(np.full(1000, 0.9), np.arange(1000) < 500)  # says 0.9, right half the time
    assert overconfident.ece() == pytest.approx(0.4, abs=1e-12)
    rel = overconfident.reliability(10)
    assert rel["count"].sum() == 1000 and rel["edges"].shape == (11,)
    assert math.isnan(rel["accuracy"][0])


def test_one_class_and_empty_are_nan_with_reason() -> None:
    empty = ProbabilityHistogram()
    assert math.isnan(empty.auroc()) and math.isnan(empty.ece())
    assert "no samples" in (empty.auroc_undefined_reason() or "")
    only_negative = ProbabilityHistogram()
    only_negative.update(np.array([0.1, 0.7]), np.array([0, 0]))
    assert math.isnan(only_negative.auroc())
    assert only_negative.auroc_undefined_reason() == "no positive labels (2 negatives): AUROC needs both classes"
    assert only_negative.ece() == pytest.approx(0.4)
    only_positive = ProbabilityHistogram()
    only_positive.update(np.array([0.9]), np.array([True]))
    assert "no negative labels" in (only_positive.auroc_undefined_reason() or "")
    both = ProbabilityHistogram()
    both.update(np.array([0.9, 0.1]), np.array([1, 0]))
    assert both.auroc_undefined_reason() is None


def test_to_dict_roundtrip_through_json() -> None:
    probs, labels = scores(5000, 7)
    hist = ProbabilityHistogram(200)
    hist.update(probs, labels)
    restored = ProbabilityHistogram.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert restored.n_bins == 200
    np.testing.assert_array_equal(restored.positive, hist.positive)
    np.testing.assert_array_equal(restored.sum_p, hist.sum_p)
    assert restored.auroc() == hist.auroc() and restored.ece() == hist.ece()
    broken = hist.to_dict()
    broken["negative"] = broken["negative"][:-1]
    with pytest.raises(ValueError, match="negative"):
        ProbabilityHistogram.from_dict(broken)
    with pytest.raises(ValueError, match="sum_p"):
        ProbabilityHistogram.from_dict({"n_bins": 3, "positive": [0] * 3, "negative": [0] * 3})


def test_bad_input_rejected() -> None:
    hist = ProbabilityHistogram()
    with pytest.raises(ValueError, match="sigmoid"):
        hist.update(np.array([0.5, 1.5]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        hist.update(np.array([np.nan]), np.array([0]))
    with pytest.raises(ValueError, match="0 or 1"):
        hist.update(np.array([0.5]), np.array([2]))
    with pytest.raises(ValueError, match="same shape"):
        hist.update(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="n_bins"):
        ProbabilityHistogram(0)
    assert hist.count == 0  # rejected batches leave no trace
