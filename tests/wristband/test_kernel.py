"""Pairwise path against a float64 brute-force loop over pairs and three radial images."""

import math

import numpy as np
import pytest
import torch

import latentshape.wristband.kernel as kernel_module
from latentshape.wristband import wristband_energy, wristband_map
from latentshape.wristband.kernel import default_alpha, pairwise_row_sums

BETA = 8.0


def loop_rows(x: torch.Tensor, angular: str):
    point = wristband_map(x)
    u, t = point.direction.tolist(), point.cdf.tolist()
    n = len(u)
    a2 = default_alpha(angular) ** 2
    rows, angular_rows = [], []
    for i in range(n):
        total = off = 0.0
        for j in range(n):
            dot = max(-1.0, min(1.0, sum(p * q for p, q in zip(u[i], u[j]))))
            if angular == "chordal":
                k_ang = math.exp(-BETA * a2 * sum((p - q) ** 2 for p, q in zip(u[i], u[j])))
            else:
                k_ang = math.exp(-BETA * a2 * math.acos(dot) ** 2)
            k_rad = sum(math.exp(-BETA * g * g) for g in (t[i] - t[j], t[i] + t[j], t[i] + t[j] - 2))
            total += k_ang * k_rad
            off += 0.0 if i == j else k_ang
        rows.append(total / n)
        angular_rows.append(off / (n - 1))
    return np.array(rows), np.array(angular_rows)


@pytest.mark.parametrize("angular", ["chordal", "geodesic"])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_pairwise_matches_loop(angular, d):
    x = torch.randn(23, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64) * 1.3 + 0.2
    rows, angular_rows = loop_rows(x, angular)
    energy = wristband_energy(x, method="pairwise", angular=angular)
    assert float(energy) == pytest.approx(rows.mean(), rel=1e-10)
    per_point = wristband_energy(x, method="pairwise", angular=angular, average="per_point")
    np.testing.assert_allclose(per_point.numpy(), rows, rtol=1e-10)
    point = wristband_map(x)
    _, a = pairwise_row_sums(point.direction[None], point.cdf[None], BETA, default_alpha(angular), angular)
    np.testing.assert_allclose(a[0].numpy(), angular_rows, rtol=1e-10)


@pytest.mark.parametrize("angular", ["chordal"])
def test_pairwise_gradcheck_with_several_blocks(monkeypatch, angular):
    # Geodesic is checked through the map below: with raw (unnormalized) u, gradcheck's
    # perturbations push the diagonal cosine past 1 into the clamp, which the map never does.
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", 20)  # 2 rows per block at N = 9
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(2, 9, 3, generator=g, dtype=torch.float64), dim=-1)
    t = torch.rand(2, 9, generator=g, dtype=torch.float64)
    u.requires_grad_()
    t.requires_grad_()

    def both(u_, t_):
        rows, angular_rows = pairwise_row_sums(u_, t_, BETA, default_alpha(angular), angular)
        return rows, angular_rows

    assert torch.autograd.gradcheck(both, (u, t))


@pytest.mark.parametrize("angular", ["chordal", "geodesic"])
@pytest.mark.parametrize("average", ["global", "per_point"])
def test_pairwise_energy_gradcheck_through_the_map(monkeypatch, average, angular):
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", 20)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64).requires_grad_()
    energy = lambda y: wristband_energy(y, method="pairwise", average=average, angular=angular)  # noqa: E731
    assert torch.autograd.gradcheck(energy, (x,))


def test_blocks_do_not_change_values(monkeypatch):
    x = torch.randn(2, 50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = wristband_energy(x, method="pairwise", average="per_point")
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", 150)
    blocked = wristband_energy(x, method="pairwise", average="per_point")
    torch.testing.assert_close(full, blocked, rtol=1e-14, atol=0)


def test_chordal_images_from_one_wide_product_match_the_rank3_updates(monkeypatch):
    """Narrow rows form each radial image in one (d + 3)-wide product: the same row sums and gradients (float64,
    1e-12) as the Gram product plus rank-3 updates used for wide rows."""
    import latentshape.wristband.kernel as kernel

    g = torch.Generator().manual_seed(11)
    u = torch.nn.functional.normalize(torch.randn(2, 60, 5, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    t = torch.rand(2, 60, generator=g, dtype=torch.float64).requires_grad_()
    weights = torch.randn(2, 2, 60, generator=g, dtype=torch.float64)

    def run():
        r, a = kernel.pairwise_row_sums(u, t, 8.0, 12 ** -0.5, "chordal")
        grads = torch.autograd.grad((weights[0] * r + weights[1] * a).sum(), (u, t))
        return (r, a) + grads

    fused = run()
    monkeypatch.setattr(kernel, "_FUSED_IMAGE_WIDTH", 0)
    for ours, reference in zip(fused, run()):
        torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-14)
