"""Every functional entry point validates its input as the modules do: clear errors, never a bare
IndexError or a silent NaN."""

from __future__ import annotations

import pytest
import torch

import latentshape.functional as F

_EYE = torch.eye(3)
CALLS = {
    "wristband_map": lambda x: F.wristband_map(x),
    "wristband_energy": lambda x: F.wristband_energy(x),
    "wristband_components": lambda x: F.wristband_components(x),
    "moment_penalty": lambda x: F.moment_penalty(x),
    "moment_matching_loss": lambda x: F.moment_matching_loss(x),
    "sigreg_statistic": lambda x: F.sigreg_statistic(x, _EYE),
    "gaussian_mmd": lambda x: F.gaussian_mmd(x, (1.0,)),
    "sliced_wasserstein_gaussian": lambda x: F.sliced_wasserstein_gaussian(x, _EYE),
    "uniformity_loss": lambda x: F.uniformity_loss(x),
    "alignment_loss": lambda x: F.alignment_loss(x, x),
    "gaussian_kl_diag": lambda x: F.gaussian_kl_diag(x, torch.zeros_like(x) if isinstance(x, torch.Tensor) else x),
    "prototype_separation": lambda x: F.prototype_separation(x),
}


def _with_nan() -> torch.Tensor:
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    x[2, 1] = float("nan")
    return x


@pytest.mark.parametrize("name", sorted(CALLS))
def test_bad_input_gets_a_clear_error(name):
    call = CALLS[name]
    with pytest.raises(ValueError, match="NaN or Inf"):
        call(_with_nan())
    with pytest.raises((ValueError, TypeError), match="shape|tensor|C >= 2"):
        call(torch.randn(5))
    with pytest.raises(TypeError, match="floating"):
        call(torch.ones(16, 3, dtype=torch.int64))


@pytest.mark.parametrize("name", ["sigreg_statistic", "sliced_wasserstein_gaussian"])
def test_slice_directions_are_checked(name):
    function = getattr(F, name)
    x = torch.randn(16, 3)
    with pytest.raises(ValueError, match="d = 3"):
        function(x, torch.eye(4))
    with pytest.raises(TypeError, match="floating"):
        function(x, torch.ones(3, 2, dtype=torch.int64))


def test_radial_distance_checks_its_coordinates():
    t = torch.rand(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="same shape"):
        F.radial_distance(t, torch.zeros(9, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.radial_distance(t + 2.0, torch.special.ndtri(t))
    assert torch.isfinite(F.radial_distance(t, torch.special.ndtri(t)))
