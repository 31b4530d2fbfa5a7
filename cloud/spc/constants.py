"""Shewhart control-chart constants as data, looked up by subgroup size ``n`` (pure).

The tabled values for n = 2..10 (d2, A2, D3, D4, c4) are the ones in ``DESIGN.md``
("Reference figures"), as printed in the usual SPC tables (ASTM STP 15D, Montgomery Appendix VI).
The X̄-S factors are derived from c4 rather than typed in a second time:

    A3 = 3 / (c4·√n)        B3 = max(0, 1 − 3·√(1 − c4²)/c4)        B4 = 1 + 3·√(1 − c4²)/c4

c4 itself has a closed form, ``c4(n) = √(2/(n−1)) · Γ(n/2) / Γ((n−1)/2)``, which ``c4`` evaluates
with ``math.lgamma`` for any n ≥ 2 (X̄-S charts are the ones used for large subgroups).
A3, B3 and B4 are derived from that exact c4, not from the 4-decimal tabled one: so derived,
they agree with the published tables to their 3 decimals for n = 2..10 (from the rounded c4,
B4 at n = 2 would come out 3.266 instead of 3.267).
Individuals charts use moving ranges of two points: σ = MR̄/1.128, X̄ ± 2.660·MR̄,
UCL(MR) = 3.267·MR̄.

``constants_for(n)`` raises ``ValueError`` naming ``n`` when it is outside the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_N = 2
MAX_N = 10

# d2 of a moving range of two points, and the individuals-chart factors derived from it.
IMR_D2 = 1.128
IMR_E2 = 2.660
IMR_D4 = 3.267

_SIZES = range(MIN_N, MAX_N + 1)
_D2 = (1.128, 1.693, 2.059, 2.326, 2.534, 2.704, 2.847, 2.970, 3.078)
_A2 = (1.880, 1.023, 0.729, 0.577, 0.483, 0.419, 0.373, 0.337, 0.308)
_D3 = (0.0, 0.0, 0.0, 0.0, 0.0, 0.076, 0.136, 0.184, 0.223)
_D4 = (3.267, 2.574, 2.282, 2.114, 2.004, 1.924, 1.864, 1.816, 1.777)
_C4 = (0.7979, 0.8862, 0.9213, 0.9400, 0.9515, 0.9594, 0.9650, 0.9693, 0.9727)


def c4(n: int) -> float:
    """The unbiasing constant c4 = E[s]/σ for subgroups of ``n`` ≥ 2 normal values (formula)."""
    if n < MIN_N:
        raise ValueError(f"n: a subgroup needs at least {MIN_N} values for c4, got {n}")
    log_ratio = math.lgamma(n / 2) - math.lgamma((n - 1) / 2)
    return math.sqrt(2 / (n - 1)) * math.exp(log_ratio)


@dataclass(frozen=True, slots=True)
class SFactors:
    """The X̄-S chart factors for one subgroup size, derived from c4."""

    n: int
    c4: float
    a3: float
    b3: float
    b4: float


def s_factors(n: int, c4_value: float | None = None) -> SFactors:
    """A3, B3, B4 from c4 (the tabled c4 when given, else the formula) for subgroup size ``n``."""
    if n < MIN_N:
        raise ValueError(f"n: an X̄-S subgroup needs at least {MIN_N} values, got {n}")
    c = c4(n) if c4_value is None else c4_value
    spread = 3 * math.sqrt(1 - c * c) / c
    return SFactors(n=n, c4=c, a3=3 / (c * math.sqrt(n)), b3=max(0.0, 1 - spread), b4=1 + spread)


@dataclass(frozen=True, slots=True)
class ChartConstants:
    """The tabled constants for one subgroup size n (2..10)."""

    n: int
    d2: float
    a2: float
    d3: float
    """D3, the R chart's LCL factor."""
    d4: float
    """D4, the R chart's UCL factor."""
    c4: float
    a3: float
    b3: float
    b4: float


def _build_table() -> dict[int, ChartConstants]:
    table = {}
    for i, n in enumerate(_SIZES):
        s = s_factors(n)
        table[n] = ChartConstants(
            n=n, d2=_D2[i], a2=_A2[i], d3=_D3[i], d4=_D4[i], c4=_C4[i], a3=s.a3, b3=s.b3, b4=s.b4
        )
    return table


TABLE: dict[int, ChartConstants] = _build_table()
"""Subgroup size n (2..10) → its constants."""


def constants_for(n: int) -> ChartConstants:
    """The constants for subgroup size ``n``; ``ValueError`` naming ``n`` outside 2..10."""
    if isinstance(n, bool) or not isinstance(n, int) or n not in TABLE:
        raise ValueError(
            f"n: subgroup size {n!r} is outside the control-chart table ({MIN_N}..{MAX_N}); "
            "use subgroups of 2 to 10 values (X̄-S charts accept larger ones)"
        )
    return TABLE[n]
