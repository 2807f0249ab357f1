"""Probability-level metrics from binned counts: AUROC and expected calibration error (ECE).

Evaluating a split produces billions of per-frame probabilities; keeping them to sort for an exact AUROC would
need gigabytes. :class:`ProbabilityHistogram` keeps, for ``n_bins`` equal-width probability bins over [0, 1],
the number of positive and negative labels and the sum of p, which is enough for both metrics:

* AUROC: the ROC curve through the bin edges, integrated by the trapezoid rule. This is the exact AUROC of the
  binned scores (pairs within one bin count 1/2, like tied scores). Its difference from the exact AUROC of the
  raw scores is at most half the fraction of (positive, negative) pairs that share a bin, about 1e-3 or less
  with 1000 bins for realistic score distributions.
* ECE: ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` over ``m`` equal-width bins, accuracy = fraction of
  positives, confidence = mean p (the binary, positive-class reliability form). Exact when ``n_bins`` is a
  multiple of ``m``; otherwise each fine bin is assigned to the coarse bin holding its centre.

Undefined cases: with no positive or no negative labels AUROC is NaN (:meth:`auroc_undefined_reason` says
why); with no samples at all ECE is NaN too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ictal.arrays import as_numpy


class ProbabilityHistogram:
    """Accumulates (probability, binary label) pairs as per-bin counts; mergeable and serialisable.

    >>> hist = ProbabilityHistogram()
    >>> for probs, labels in batches:      # any shapes, numpy or torch, probabilities in [0, 1]
    ...     hist.update(probs, labels)
    >>> hist.auroc(), hist.ece()
    """

    def __init__(self, n_bins: int = 1000) -> None:
        if int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"n_bins must be a positive whole number, got {n_bins!r}")
        self.n_bins = int(n_bins)
        self.positive = np.zeros(self.n_bins, dtype=np.int64)  # label-1 count per bin
        self.negative = np.zeros(self.n_bins, dtype=np.int64)  # label-0 count per bin
        self.sum_p = np.zeros(self.n_bins, dtype=np.float64)  # sum of p per bin (mean confidence for ECE)

    @property
    def count(self) -> int:
        return int(self.positive.sum() + self.negative.sum())

    def update(self, probs: Any, labels: Any) -> None:
        """Add probabilities and their labels.

        Args:
            probs: seizure probabilities in [0, 1], any shape (e.g. ``(B, 960)`` frames).
            labels: the same shape: bool, or numbers that are exactly 0 or 1.

        Raises:
            ValueError: for mismatched shapes, probabilities outside [0, 1] or NaN, or labels other than 0/1.
        """
        p_in, y_in = as_numpy(probs), as_numpy(labels)
        if p_in.shape != y_in.shape:
            raise ValueError(f"probs and labels must have the same shape, got {p_in.shape} and {y_in.shape}")
        p = p_in.astype(np.float64, copy=False).ravel()
        y = y_in.ravel()
        if p.size == 0:
            return
        if not (np.all(p >= 0.0) and np.all(p <= 1.0)):  # also catches NaN
            bad = p[~((p >= 0.0) & (p <= 1.0))][0]
            raise ValueError(f"probabilities must lie in [0, 1] (apply a sigmoid to logits); found {bad}")
        if y.dtype != bool:
            if not np.all((y == 0) | (y == 1)):
                raise ValueError("labels must be 0 or 1 (or bool); found other values")
            y = y == 1
        index = np.minimum((p * self.n_bins).astype(np.int64), self.n_bins - 1)  # p == 1 goes in the last bin
        n_pos = np.bincount(index[y], minlength=self.n_bins)
        n_all = np.bincount(index, minlength=self.n_bins)
        self.positive += n_pos
        self.negative += n_all - n_pos
        self.sum_p += np.bincount(index, weights=p, minlength=self.n_bins)

    def merge(self, other: ProbabilityHistogram) -> ProbabilityHistogram:
        """Add ``other``'s counts into this histogram (e.g. from another worker); returns ``self``."""
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot merge histograms with {self.n_bins} and {other.n_bins} bins")
        self.positive += other.positive
        self.negative += other.negative
        self.sum_p += other.sum_p
        return self

    def auroc_undefined_reason(self) -> str | None:
        """Why AUROC is undefined for the data so far, or None when it is defined."""
        n_pos, n_neg = int(self.positive.sum()), int(self.negative.sum())
        if n_pos == 0 and n_neg == 0:
            return "no samples: AUROC needs positive and negative labels"
        if n_pos == 0:
            return f"no positive labels ({n_neg} negatives): AUROC needs both classes"
        if n_neg == 0:
            return f"no negative labels ({n_pos} positives): AUROC needs both classes"
        return None

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """False- and true-positive rates at thresholds on the bin edges, from 1 down to 0, shape ``(n_bins+1,)``.

        Both are NaN when the corresponding class is absent.
        """
        # Thresholds descending: predicting positive for bins >= b, b = n_bins .. 0.
        tp = np.concatenate(([0], np.cumsum(self.positive[::-1])))
        fp = np.concatenate(([0], np.cumsum(self.negative[::-1])))
        with np.errstate(invalid="ignore", divide="ignore"):
            return fp / fp[-1], tp / tp[-1]

    def auroc(self) -> float:
        """Area under the ROC curve of the binned scores (trapezoid rule); NaN when only one class was seen."""
        if self.auroc_undefined_reason() is not None:
            return float("nan")
        fpr, tpr = self.roc_curve()
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))

    def reliability(self, n_bins: int = 15) -> dict[str, np.ndarray]:
        """Reliability-diagram data over ``n_bins`` equal-width bins, each array shape ``(n_bins,)``.

        Returns:
            ``count`` (samples per bin), ``confidence`` (mean p), ``accuracy`` (fraction positive); the last
            two are NaN in empty bins. ``edges`` has shape ``(n_bins + 1,)``.
        """
        if int(n_bins) != n_bins or n_bins < 1:
            raise ValueError(f"n_bins must be a positive whole number, got {n_bins!r}")
        # Each fine bin goes to the coarse bin holding its centre; exact when n_bins divides self.n_bins.
        centres = (np.arange(self.n_bins) + 0.5) / self.n_bins
        coarse = np.minimum((centres * n_bins).astype(np.int64), n_bins - 1)
        count = np.bincount(coarse, weights=self.positive + self.negative, minlength=n_bins)
        positive = np.bincount(coarse, weights=self.positive, minlength=n_bins)
        sum_p = np.bincount(coarse, weights=self.sum_p, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            confidence = sum_p / count
            accuracy = positive / count
        return {
            "edges": np.linspace(0.0, 1.0, n_bins + 1),
            "count": count.astype(np.int64),
            "confidence": confidence,
            "accuracy": accuracy,
        }

    def ece(self, n_bins: int = 15) -> float:
        """Expected calibration error over ``n_bins`` equal-width bins; NaN when there are no samples."""
        rel = self.reliability(n_bins)
        total = rel["count"].sum()
        if total == 0:
            return float("nan")
        filled = rel["count"] > 0
        gap = np.abs(rel["accuracy"][filled] - rel["confidence"][filled])
        return float(np.sum(rel["count"][filled] / total * gap))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the counts (lists), restorable with :meth:`from_dict`."""
        return {
            "n_bins": self.n_bins,
            "positive": self.positive.tolist(),
            "negative": self.negative.tolist(),
            "sum_p": self.sum_p.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbabilityHistogram:
        """The histogram saved by :meth:`to_dict`.

        Raises:
            ValueError: naming the missing key or the array whose length is not ``n_bins``.
        """
        missing = [key for key in ("n_bins", "positive", "negative", "sum_p") if key not in data]
        if missing:
            raise ValueError(f"probability histogram is missing key(s) {missing}")
        hist = cls(int(data["n_bins"]))
        for key, dtype in (("positive", np.int64), ("negative", np.int64), ("sum_p", np.float64)):
            values = np.asarray(data[key], dtype=dtype)
            if values.shape != (hist.n_bins,):
                raise ValueError(f"probability histogram key {key!r} has {values.size} values, expected {hist.n_bins}")
            setattr(hist, key, values)
        return hist
