"""How bench_accuracy.py --decide turns measurements into defaults (pure functions, tested).

- ``choose``: per strategy, the candidate whose worst shortfall against the best candidate of
  each selection setting is smallest (a default must not lose much anywhere), then the better
  mean, then the cheaper one (candidates are listed cheapest first; worst shortfalls within
  ``tie`` of each other are equal). Held-out settings never
  take part; ``held_out_check`` reports how the choice does on them.
- ``threshold``: the statistics shift above which adapting BatchNorm statistics pays: the
  midpoint between the largest shift where adapting lost and the smallest where it gained, when
  one value separates them (None when the evidence overlaps: then no automatic rule is honest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# measured[setting][strategy][candidate] = mean accuracy over the seeds
Measured = Mapping[str, Mapping[str, Mapping[str, float]]]


def shortfalls(measured: Measured, strategy: str, candidate: str, settings: Sequence[str]) -> list[float]:
    """How far ``candidate`` is below the best candidate, per setting (0 where it is the best)."""
    out = []
    for s in settings:
        row = measured[s][strategy]
        out.append(max(row.values()) - row[candidate])
    return out


def choose(
    measured: Measured, strategy: str, candidates: Sequence[str], held_out: set[str], tie: float = 0.0
) -> str:
    """The candidate to make the default for ``strategy`` (``candidates`` cheapest first).
    Worst shortfalls within ``tie`` of the smallest count as equal (a measurement cannot tell
    them apart): the better mean then decides, then the cheaper candidate."""
    settings = [s for s in measured if s not in held_out and strategy in measured[s]]
    if not settings:
        raise ValueError(f"no selection setting measured {strategy}")
    gaps = {c: shortfalls(measured, strategy, c, settings) for c in candidates}
    least = min(max(g) for g in gaps.values())

    def score(item: tuple[int, str]) -> tuple[float, float, int]:
        cost, c = item
        worst = max(gaps[c])
        return (0.0 if worst <= least + tie else worst, sum(gaps[c]) / len(gaps[c]), cost)

    return min(enumerate(candidates), key=score)[1]


def held_out_check(measured: Measured, strategy: str, chosen: str, held_out: set[str]) -> dict[str, float]:
    """The chosen candidate's shortfall against the best on each held-out setting."""
    return {
        s: max(measured[s][strategy].values()) - measured[s][strategy][chosen]
        for s in measured
        if s in held_out and strategy in measured[s]
    }


def threshold(shift: Mapping[str, float], gain: Mapping[str, float]) -> float | None:
    """The shift above which adapting gains: midpoint between the largest shift where it lost
    (gain < 0) and the smallest where it gained (gain > 0); ties (gain 0) say nothing. None when
    no single value separates them, or one side is empty."""
    lost = [shift[s] for s in gain if gain[s] < 0]
    won = [shift[s] for s in gain if gain[s] > 0]
    if not lost or not won or max(lost) >= min(won):
        return None
    return (max(lost) + min(won)) / 2
