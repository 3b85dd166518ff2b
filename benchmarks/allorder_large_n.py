"""Large-N paths for the sharp kernel's degrees >= 3: residual on blocks of B against random features.

At N = 65536, d = 16 (the cost target's shape) and N = 16384, d = 64, each candidate's calibrated
total on sources of the design suites (mean of 2 batches). Every candidate has the default's
components (rep of the degree-2 spectral c = 4/3 kernel, rad, mom) plus a second rep, the energy
of the sharp kernel e^{8 (x - 1)}: its degrees <= 2 (spectral, whole batch) plus either

- ``blocks B``: its residual on blocks of B (``latentshape.wristband.blocks``), or
- ``rf M``: M random Fourier features of the sharp kernel over the whole batch (fixed seed);

``default`` has no second rep. All nulls by Monte-Carlo (100 batches, the same for all).

    python benchmarks/allorder_large_n.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from allorder_sources import SUITE_A, SUITE_B  # noqa: E402

from latentshape.calibration import NullStats  # noqa: E402
from latentshape.gaussian.moment_penalties import moment_penalty  # noqa: E402
from latentshape.wristband.blocks import block_residual_energy, low_degree_coefficients  # noqa: E402
from latentshape.wristband.map import wristband_map  # noqa: E402
from latentshape.wristband.radial import radial_distance  # noqa: E402
from latentshape.wristband.mercer import radial_coefficients
from latentshape.wristband.spectral import spectral_kernel_sums  # noqa: E402

SHARP = 8.0
RADIAL = radial_coefficients(8.0, 6)
SOURCES = ("poles_simplex", "lobes_cross", "bimodal_coord", "uniform_coord", "x", "cube",
           "poles_cross", "lobes_triangle", "asterisk", "student_8")


def _features_energy(u, t, features: int):
    d = u.shape[-1]
    omega = math.sqrt(SHARP) * torch.randn(d, features, generator=torch.Generator().manual_seed(2024), dtype=u.dtype)
    w = torch.cos(t[..., None] * math.pi * torch.arange(len(RADIAL), dtype=u.dtype))
    phase = u @ omega
    cos_sums = torch.cos(phase).transpose(-1, -2) @ w / u.shape[-2]
    sin_sums = torch.sin(phase).transpose(-1, -2) @ w / u.shape[-2]
    a = torch.tensor(RADIAL, dtype=u.dtype)
    return ((cos_sums**2 + sin_sums**2) * a).sum(dim=(-2, -1)) / features


def raw_all(x, configs):
    """(rep_default, rad, mom) and one sharp rep per config, float64: dict config -> (4,) or (3,) tensor."""
    u, t, z = wristband_map(x)
    t = t.to(x.dtype)
    d = x.shape[-1]
    head, _ = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
    sharp_low, _ = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (SHARP,), (1.0,)))
    common = [head.log() / 8.0, radial_distance(t.double(), z), moment_penalty(x, "w2")]
    common = [c.to(torch.float64).reshape(()) for c in common]
    out = {"default": torch.stack(common)}
    for method, size in configs:
        if method == "blocks":
            extra = block_residual_energy(u, t, RADIAL, (SHARP,), (1.0,), size)
        else:
            extra = _features_energy(u, t, size)
        rep = ((sharp_low + extra).log() / 8.0).to(torch.float64).reshape(())
        out[(method, size)] = torch.stack([common[0], rep, common[1], common[2]])
    return out


def weights(key) -> torch.Tensor:
    return torch.tensor([1.0, 0.1, 1.0] if key == "default" else [1.0, 1.0, 0.1, 1.0], dtype=torch.float64)


def run(cells=((65536, 16), (16384, 64)), null_batches: int = 100) -> None:
    torch.set_num_threads(1)
    table = {**SUITE_A, **SUITE_B}
    for n, d in cells:
        configs = [("blocks", b) for b in (8, 16, 64)] + [("rf", m) for m in (16, 64)]
        keys = ["default"] + configs
        g = torch.Generator().manual_seed(99)
        with torch.no_grad():
            draws = [raw_all(torch.randn(1, n, d, generator=g), configs) for _ in range(null_batches)]
        stats = {k: NullStats.from_samples(torch.stack([row[k] for row in draws])) for k in keys}
        print(f"\nN = {n}, d = {d}: calibrated total (mean of 2 batches; nulls: {null_batches} batches)\n")
        print("| source | " + " | ".join("default" if k == "default" else f"+ c8 {k[0]} {k[1]}" for k in keys) + " |")
        print("|---|" + "---:|" * len(keys))
        for name in SOURCES:
            sums = {k: 0.0 for k in keys}
            for r in range(2):
                with torch.no_grad():
                    row = raw_all(table[name](n, d, torch.Generator().manual_seed(100 + r)).unsqueeze(0), configs)
                for k in keys:
                    w = weights(k)
                    sums[k] += float((stats[k].standardize(row[k]) * w).sum() / stats[k].combined_std(w)) / 2
            print(f"| {name} | " + " | ".join(f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}" for v in sums.values()) + " |",
                  flush=True)


if __name__ == "__main__":
    run()
