"""Share of the angular kernel's trace kept up to degree L, and the harmonic features a spectral path needs.

For the chordal kernel exp(c (u.u' - 1)) on S^{d-1}, trace k(1) = 1 = sum_l lambda_l Z_l(1); the
table prints the cumulative share up to L, the smallest L keeping 90 / 95 / 99% and the number of
per-point harmonic features sum_{l <= L} Z_l(1) of such a spectral path (times K + 1 radial modes).

    python benchmarks/angular_trace_share.py
"""

from __future__ import annotations

import math

from latentshape.wristband.harmonics import degree_for_share, trace_share, zonal_dimension

SCALES = (4.0 / 3.0, 2.0, 4.0, 8.0)
DIMS = (2, 3, 8, 16, 64, 128)
LEVELS = (0, 1, 2, 3, 4, 6, 8)


def features(d: int, level: int) -> float:
    return sum(zonal_dimension(d, l) for l in range(level + 1))


def main() -> None:
    print("| c | d | " + " | ".join(f"L<={l}" for l in LEVELS) + " | L for 90% / 95% / 99% | features at 99% |")
    print("|---|---|" + "---:|" * len(LEVELS) + "---|---:|")
    for c in SCALES:
        for d in DIMS:
            shares = trace_share(d, max(LEVELS), c)
            needed = [degree_for_share(d, c, s) for s in (0.90, 0.95, 0.99)]
            count = features(d, needed[-1])
            shown = f"{count:.0f}" if count < 1e7 else f"{count:.1e}"
            print(f"| {c:.3g} | {d} | " + " | ".join(f"{100 * shares[l]:.0f}%" for l in LEVELS)
                  + f" | {' / '.join(map(str, needed))} | {shown} |")


if __name__ == "__main__":
    main()
