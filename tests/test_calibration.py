"""Null calibration: estimates, the combined sd, and the memory/disk caches."""

import subprocess
import sys

import pytest
import torch

from latentshape import calibration
from latentshape.calibration import NullStats, cached_null_stats, monte_carlo_null


def test_monte_carlo_moments_of_a_known_statistic():
    # mean of N*d standard normals: mean 0, sd 1/sqrt(N d); its square: mean 1/(N d)
    stats = monte_carlo_null(lambda x: torch.stack([x.mean(dim=(-2, -1)), x.mean(dim=(-2, -1)) ** 2], -1),
                             n=8, d=4, samples=20000, seed=3)
    assert float(stats.mean[0]) == pytest.approx(0.0, abs=3 * (1 / 32) ** 0.5 / 20000**0.5)
    assert float(stats.std[0]) == pytest.approx((1 / 32) ** 0.5, rel=0.02)
    assert float(stats.mean[1]) == pytest.approx(1 / 32, rel=0.03)


def test_combined_sd_uses_the_correlation():
    values = torch.randn(50000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    stats = NullStats.from_samples(torch.cat([values, values, -values], dim=1))
    assert stats.combined_std(torch.tensor([1.0, 1.0, 0.0])) == pytest.approx(2.0, rel=1e-9)
    assert stats.combined_std(torch.tensor([1.0, 0.0, 1.0])) == pytest.approx(1.0, abs=1e-6)  # cancels: fallback 1


def test_same_arguments_give_the_same_calibration():
    statistic = lambda x: x.sum(dim=(-2, -1))  # noqa: E731
    a = monte_carlo_null(statistic, 5, 3, samples=64, seed=1, max_elements=15)
    b = monte_carlo_null(statistic, 5, 3, samples=64, seed=1, max_elements=15)
    c = monte_carlo_null(statistic, 5, 3, samples=64, seed=2, max_elements=15)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert not torch.equal(a.mean, c.mean)


def test_memory_cache_computes_once():
    calls = []

    def compute():
        calls.append(1)
        return NullStats.from_samples(torch.randn(10, 2))

    key = ("test-memory-cache", 1)
    first = cached_null_stats(key, compute)
    assert cached_null_stats(key, compute) is first and len(calls) == 1


def test_disk_cache_survives_a_new_process(tmp_path):
    code = (
        "import torch, latentshape.calibration as c\n"
        f"c.set_disk_cache({str(tmp_path)!r})\n"
        "calls = []\n"
        "def compute():\n"
        "    calls.append(1)\n"
        "    return c.NullStats.from_samples(torch.arange(6.0).reshape(3, 2))\n"
        "s = c.cached_null_stats(('disk-test', 7), compute)\n"
        "print(len(calls), s.mean.tolist())\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert first[0] == "1" and second[0] == "0"  # the second process read it from disk
    assert first[1:] == second[1:]
    assert len(list(tmp_path.glob("null-*.pt"))) == 1


def test_corrupt_disk_entry_is_recomputed(tmp_path):
    calibration.set_disk_cache(tmp_path)
    try:
        key = ("corrupt-test", 1)
        path = calibration._disk_path(key)
        path.write_bytes(b"not a tensor file")
        stats = cached_null_stats(key, lambda: NullStats.from_samples(torch.ones(4, 1).cumsum(0)))
        assert float(stats.mean) == pytest.approx(2.5)
    finally:
        calibration.set_disk_cache(None)
