"""The NEDC v6 scorers transcribed from ``../shared/spec/scoring.md``, slowly and literally, one file at a time.

A test oracle: plain loops over one file's events, written apart from ``ictal.scoring`` and sharing no code with
it, so that the fast scorers can be checked against the definitions on any input. Where the spec leaves a
detail open, the NEDC tool v6.0.0's behaviour is written out and marked "(tool)".

A file is ``rows`` (``(start, stop, label)`` with labels ``seiz`` / ``bckg``, in file order) and its stated
``duration``. Every function returns ``(targets, hits, misses, false_alarms)`` per label.
"""

from __future__ import annotations

SEIZ, BCKG = "seiz", "bckg"
LABELS = (SEIZ, BCKG)

Event = tuple[float, float, str]
Counts = dict[str, list[float]]


def common_step(rows: list[Event], duration: float) -> list[Event]:
    """Sort by start, fill gaps with ``bckg`` (times rounded to 4 decimals), join consecutive equal labels."""
    if not rows:
        return [(0.0, duration, BCKG)]  # (tool) a file without rows is one background event
    events = sorted(rows, key=lambda e: (e[0], e[1]))  # (tool) its reader sorts by start, then stop
    filled: list[Event] = []
    now = 0.0
    for start, stop, label in events:
        if round(start, 4) != now:
            filled.append((now, round(start, 4), BCKG))  # negative length where two rows overlap
        filled.append((start, stop, label))
        now = round(stop, 4)
    if now != round(duration, 4):
        filled.append((now, round(duration, 4), BCKG))
    joined: list[Event] = []
    for start, stop, label in filled:
        if joined and joined[-1][2] == label:
            joined[-1] = (joined[-1][0], stop, label)
        else:
            joined.append((start, stop, label))
    return joined


def scored_duration(ref: list[Event]) -> float:
    """(tool) The duration a file adds to the total: the stop of its reference's last event."""
    return ref[-1][1]


def ovlp(ref: list[Event], hyp: list[Event]) -> Counts:
    out: Counts = {}
    for label in LABELS:
        refs = [e for e in ref if e[2] == label]
        hyps = [e for e in hyp if e[2] == label]
        hits = 0
        for r in refs:
            if any(h[1] > r[0] and h[0] < r[1] for h in hyps):
                hits += 1
        false_alarms = 0
        for h in hyps:
            if not any(r[1] > h[0] and r[0] < h[1] for r in refs):
                false_alarms += 1
        out[label] = [len(refs), hits, len(refs) - hits, false_alarms]
    return out


def anyovlp(a: Event, b: Event) -> bool:
    return bool(set(range(int(a[0]), int(a[1]) + 1)) & set(range(int(b[0]), int(b[1]) + 1)))


def part(r: Event, h: Event) -> tuple[float, float]:
    d = r[1] - r[0]
    if h[0] <= r[0] and h[1] <= r[1]:
        return (h[1] - r[0]) / d, min(1.0, (r[0] - h[0]) / d)
    if h[0] >= r[0] and h[1] >= r[1]:
        return (r[1] - h[0]) / d, min(1.0, (h[1] - r[1]) / d)
    if h[0] < r[0] and h[1] > r[1]:
        return 1.0, min(1.0, (r[0] - h[0] + h[1] - r[1]) / d)
    return (h[1] - h[0]) / d, 0.0


def taes(ref: list[Event], hyp: list[Event]) -> Counts:
    """The walk of the spec; ``ZeroDivisionError`` where a zero-length reference meets a hypothesis (tool)."""
    out: Counts = {}
    for label in LABELS:
        refs = [e for e in ref if e[2] == label]
        hyps = [e for e in hyp if e[2] == label]
        r_used = [False] * len(refs)
        h_used = [False] * len(hyps)
        hit_total = miss_total = fa_total = 0.0
        for i, r in enumerate(refs):
            if r_used[i] or not any(h[1] > r[0] and h[0] < r[1] for h in hyps):
                continue
            for j, h in enumerate(hyps):
                if h_used[j] or not anyovlp(r, h):
                    continue
                hit, fa = part(r, h)
                miss = 1.0 - hit
                r_used[i] = h_used[j] = True
                if h[1] >= r[1]:
                    for k in range(i + 1, len(refs)):
                        if anyovlp(refs[k], h):
                            miss += 1.0
                            r_used[k] = True
                else:
                    for k in range(j + 1, len(hyps)):
                        if anyovlp(r, hyps[k]):
                            h_k, f_k = part(r, hyps[k])
                            hit += h_k
                            miss -= h_k
                            fa += f_k
                            h_used[k] = True
                hit_total += hit
                miss_total += miss
                fa_total += fa
        miss_total += r_used.count(False)
        fa_total += h_used.count(False)
        out[label] = [float(len(refs)), hit_total, miss_total, fa_total]
    return out


def label_at(events: list[Event], t: float) -> str:
    for start, stop, label in events:
        if start <= t <= stop:
            return label
    return events[-1][2]  # (tool) no event holds t: its lookup returns -1, the last event


def epoch(ref: list[Event], hyp: list[Event]) -> Counts:
    counts = {SEIZ: [0.0] * 4, BCKG: [0.0] * 4}
    k = 0
    t = 0.125
    while t <= scored_duration(ref):
        r, h = label_at(ref, t), label_at(hyp, t)
        counts[r][0] += 1
        if r == h:
            counts[r][1] += 1
        else:
            counts[r][2] += 1
            counts[h][3] += 1 if h == SEIZ else 0  # bckg is the null class: it has no false alarms
        k += 1
        t = 0.125 + k * 0.25
    return counts


def dpalign(ref: list[Event], hyp: list[Event]) -> Counts:
    """Levenshtein alignment of the label sequences with unit costs; a null symbol pads both ends (tool).

    Ties (tool): a cell takes substitution/match unless insertion is strictly cheaper, and deletion only where
    it is strictly cheaper than both.
    """
    r = [None] + [e[2] for e in ref] + [None]
    h = [None] + [e[2] for e in hyp] + [None]
    cost = [[0.0] * len(h) for _ in r]
    step = [["sub"] * len(h) for _ in r]
    for i in range(len(r)):
        for j in range(len(h)):
            if i == 0 and j == 0:
                continue
            if i == 0:
                cost[i][j], step[i][j] = float(j), "ins"
                continue
            if j == 0:
                cost[i][j], step[i][j] = float(i), "del"
                continue
            sub = cost[i - 1][j - 1] + (0.0 if r[i] == h[j] else 1.0)
            ins = cost[i][j - 1] + 1.0
            dele = cost[i - 1][j] + 1.0
            best, kind = (ins, "ins") if ins < sub else (sub, "sub")
            if dele < best:
                best, kind = dele, "del"
            cost[i][j], step[i][j] = best, kind
    pairs: list[tuple[str | None, str | None]] = []
    i, j = len(r) - 1, len(h) - 1
    while i >= 0 and j >= 0:
        kind = step[i][j]
        if kind == "del":
            pairs.append((r[i], None))
            i -= 1
        elif kind == "ins":
            pairs.append((None, h[j]))
            j -= 1
        else:
            pairs.append((r[i], h[j]))
            i -= 1
            j -= 1
    pairs.reverse()
    counts = {SEIZ: [0.0] * 4, BCKG: [0.0] * 4}
    for a, b in pairs[1:-1]:
        if a is None:
            if b is not None:
                counts[b][3] += 1
            continue
        counts[a][0] += 1
        counts[a][1 if a == b else 2] += 1
    return counts


SCORERS = {"ovlp": ovlp, "taes": taes, "epoch": epoch, "dpalign": dpalign}


def score_file(ref_rows: list[Event], hyp_rows: list[Event], duration: float) -> dict[str, Counts]:
    """Every scorer on one file; a scorer that fails (TAES dividing by zero) maps to its exception."""
    ref, hyp = common_step(ref_rows, duration), common_step(hyp_rows, duration)
    out: dict[str, Counts] = {}
    for name, scorer in SCORERS.items():
        try:
            out[name] = scorer(ref, hyp)
        except ZeroDivisionError as exc:
            out[name] = {"error": [exc]}  # type: ignore[dict-item]
    return out
