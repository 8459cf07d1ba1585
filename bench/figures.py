"""The bench's figures (a median, its baseline, the ratio, a target) and their table (bench/bench.py)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def med(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


@dataclass
class Figure:
    key: str
    label: str
    unit: str  # "s", "msg/s", "pkt/s", "MB"
    higher_is_better: bool = False
    values: list[float] = field(default_factory=list)
    baseline_label: str | None = None
    baseline_values: list[float] = field(default_factory=list)
    target_text: str | None = None
    target: Callable[["Figure"], bool] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return med(self.values)

    @property
    def baseline(self) -> float | None:
        return med(self.baseline_values)

    @property
    def ratio(self) -> float | None:
        m, b = self.median, self.baseline
        if m is None or not b:
            return None
        return m / b

    @property
    def met(self) -> bool | None:
        if self.target is None or self.median is None:
            return None
        return bool(self.target(self))

    def as_json(self) -> dict[str, Any]:
        r = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "label": self.label,
            "unit": self.unit,
            "median": r(self.median),
            "values": [r(v) for v in self.values],
            "higher_is_better": self.higher_is_better,
            "baseline": None
            if self.baseline_label is None
            else {
                "label": self.baseline_label,
                "median": r(self.baseline),
                "values": [r(v) for v in self.baseline_values],
            },
            "ratio": r(self.ratio),
            "ratio_means": "ours / baseline",
            "target": self.target_text,
            "met": self.met,
            "details": self.details,
        }


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v:.3f} s" if v < 1 else f"{v:.2f} s"
    if unit == "pkt/s":
        return f"{v / 1000:,.0f}k pkt/s"
    if unit == "msg/s":
        return f"{v:,.0f} msg/s"
    if unit == "MB":
        return f"{v:,.0f} MB"
    return f"{v:g} {unit}"


def table(figures: dict[str, Figure], errors: dict[str, str]) -> str:
    rows = [("figure", "median", "baseline", "ratio", "target", "met?")]
    for f in figures.values():
        met = {True: "yes", False: "NO", None: "-"}[f.met]
        rows.append(
            (
                f.label,
                fmt(f.median, f.unit),
                fmt(f.baseline, f.unit) if f.baseline_label else "-",
                f"{f.ratio:.2f}" if f.ratio is not None else "-",
                f.target_text or "-",
                met,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for j, r in enumerate(rows):
        lines.append(
            " | ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) if i < 4 else c.ljust(widths[i])
                for i, c in enumerate(r)
            ).rstrip()
        )
        if j == 0:
            lines.append("-+-".join("-" * w for w in widths))
    baselines = [f"  {f.label}: baseline = {f.baseline_label}" for f in figures.values() if f.baseline_label]
    text = "\n".join(lines) + "\nratio = ours / baseline (times: > 1 is slower; rates: < 1 is slower)\n"
    text += "\n".join(baselines) + "\n"
    for section, err in errors.items():
        text += f"\nSECTION FAILED: {section}: {err}"
    return text
