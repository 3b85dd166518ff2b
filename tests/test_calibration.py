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
    # written here, read by a fresh interpreter (whose in-memory cache is empty)
    calibration.set_disk_cache(tmp_path)
    try:
        key = ("disk-test", 7)
        calibration.clear_null_cache()
        written = cached_null_stats(key, lambda: NullStats.from_samples(torch.arange(6.0).reshape(3, 2)))
    finally:
        calibration.set_disk_cache(None)
    code = (
        "import torch, latentshape.calibration as c\n"
        f"c.set_disk_cache({str(tmp_path)!r})\n"
        "calls = []\n"
        "def compute():\n"
        "    calls.append(1)\n"
        "    return c.NullStats.from_samples(torch.zeros(3, 2))\n"
        "s = c.cached_null_stats(('disk-test', 7), compute)\n"
        "print(len(calls), *s.mean.tolist())\n"
    )
    read = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert read[0] == "0"  # the fresh process read it from disk
    assert [float(v) for v in read[1:]] == written.mean.tolist()
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


# -- the calibrated total never overflows its dtype ---------------------------------------------

def _cap(dtype):
    return calibration.SATURATION * torch.finfo(dtype).max


def test_total_below_the_cap_is_the_plain_z_score():
    stats = NullStats.from_samples(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 2.0], [1.0, 0.5]]))
    values = torch.tensor([[3.0, -2.0], [1e20, 7.0]], dtype=torch.float32)
    weights = torch.tensor([1.0, 0.5])
    total, z = stats.total(values, weights)
    z64 = (values.double() - stats.mean) / stats.std
    expected = (z64 * weights.double()).sum(-1) / float(weights.double() @ stats.corr @ weights.double()) ** 0.5
    assert total.dtype == torch.float32 and z.dtype == torch.float32
    torch.testing.assert_close(total, expected.float(), rtol=1e-6, atol=0)
    torch.testing.assert_close(z, z64.float(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_total_beyond_float32_saturates_and_keeps_the_gradient_direction(sign):
    # raw values that fit float32 but whose z-scores (null sd 1e-3) do not
    stats = NullStats.from_samples(torch.tensor([[0.0, 0.0], [2e-3, 1e-3], [0.0, 2e-3]]))
    raw = torch.tensor([sign * 3e38, sign * 1e37], requires_grad=True)
    total, z = stats.total(raw, torch.tensor([1.0, 2.0]))
    assert float(total) == sign * _cap(torch.float32)
    assert torch.isfinite(z).all() and (z.abs() <= _cap(torch.float32)).all()
    total.backward()
    assert torch.isfinite(raw.grad).all() and (raw.grad.abs() > 0).all()
    # the unsaturated gradient, in float64, points the same way
    raw64 = raw.detach().double().requires_grad_()
    stats.total(raw64, torch.tensor([1.0, 2.0]))[0].backward()
    cosine = torch.nn.functional.cosine_similarity(raw.grad.double(), raw64.grad, dim=0)
    assert float(cosine) > 1 - 1e-6


def test_total_of_float64_raw_near_its_largest_value_stays_finite():
    stats = NullStats.from_moments(0.0, 1e-4)
    raw = torch.tensor([1e307, -1e306], dtype=torch.float64, requires_grad=True)
    total, _ = stats.total(raw[:, None], torch.tensor([1.0]))
    torch.testing.assert_close(total.detach(), torch.tensor([_cap(torch.float64), -_cap(torch.float64)],
                                                            dtype=torch.float64))
    total.sum().backward()
    assert torch.isfinite(raw.grad).all() and (raw.grad > 0).all()


def test_total_in_a_narrower_requested_dtype_saturates_at_that_dtype():
    stats = NullStats.from_moments(0.0, 1.0)
    total, z = stats.total(torch.tensor([[1e300], [2.0]], dtype=torch.float64), torch.tensor([1.0]), dtype=torch.float32)
    assert total.dtype == torch.float32 and z.dtype == torch.float32
    assert total.tolist() == [_cap(torch.float32), 2.0]


def test_calibrated_sliced_wasserstein_at_a_huge_scale_is_finite_with_a_descent_direction():
    from latentshape import SlicedWassersteinGaussian

    x = 1e19 * torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    calibrated = x.clone().requires_grad_()
    value = SlicedWassersteinGaussian(calibrate=True, null_samples=64, seed=3)(calibrated)  # the raw distance (~1e38) fits float32, its z-score does not
    assert float(value) == _cap(torch.float32)
    value.backward()
    raw = x.clone().requires_grad_()
    SlicedWassersteinGaussian(calibrate=False, seed=3)(raw).backward()  # the same slices
    assert torch.isfinite(calibrated.grad).all() and float(calibrated.grad.abs().max()) > 0
    cosine = torch.nn.functional.cosine_similarity(calibrated.grad.flatten(), raw.grad.flatten(), dim=0)
    assert float(cosine) > 1 - 1e-5
