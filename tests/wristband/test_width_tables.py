"""The wristband's per-width null tables against direct float64 references (the unfolded, uncached forms).

The tables are built once per width d; these tests pin their values to the straightforward
computations they replace (every chi-square quantile inverted, the full symmetric direction grid,
one Mercer series per length) and the whole closed-form null to reference values at four shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from latentshape.wristband import harmonics
from latentshape.wristband.allorder_null import allorder_null_stats
from latentshape.wristband.chi_quantiles import chi_square_quantiles
from latentshape.wristband.components import WristbandConfig
from latentshape.wristband.coordinates_null import _direction_grid, _legendre, coordinate_feature_moments
from latentshape.wristband.harmonics import _series_length, degree_for_share, log_zonal_dimension, log_zonal_dimensions
from latentshape.wristband.radial_expectations import radial_expectations

WIDTHS = [1, 2, 3, 8, 33, 130]


def _close(new, reference, tol=1e-12):
    """Max |new - reference| relative to max |reference| (entries that vanish by symmetry are rounding)."""
    new, reference = np.asarray(new, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    assert new.shape == reference.shape
    scale = np.abs(reference).max()
    assert np.abs(new - reference).max() <= tol * scale, (np.abs(new - reference).max(), scale)


def _quantiles_by_inversion(d: int, z: np.ndarray) -> np.ndarray:
    half = 0.5 * d
    return np.where(z < 0, 2.0 * special.gammaincinv(half, special.ndtr(z)), 2.0 * special.gammainccinv(half, special.ndtr(-z)))


@pytest.mark.parametrize("d", [1, 2, 3, 7, 64, 1000, 10000])
def test_chi_square_quantiles_against_the_inverse_at_every_node(d):
    z = np.linspace(-12.0, 12.0, 2001)
    reference = _quantiles_by_inversion(d, z)
    assert np.array_equal(chi_square_quantiles(d, z, stride=1), reference)  # each tail on its own side: same values
    assert np.abs(chi_square_quantiles(d, z) / reference - 1.0).max() < 1e-13  # Halley between every 16th node


def test_chi_square_quantiles_bad_grids():
    assert chi_square_quantiles(4, np.array([])).size == 0
    for bad in (np.array([1.0, 0.0]), np.zeros((2, 2))):
        with pytest.raises(ValueError, match="sorted 1-D grid"):
            chi_square_quantiles(4, bad)
    with pytest.raises(ValueError, match="d >= 1"):
        chi_square_quantiles(0, np.array([0.0]))


def _feature_moments_reference(d: int, modes: int, k_modes: int, max_level: int) -> dict[str, np.ndarray]:
    """The integrals on the full (z, s) grid, s-sum first (no parity folding)."""
    z = np.linspace(-10.0, 10.0, 201)
    trapezoid = np.full(z.size, z[1] - z[0])
    trapezoid[[0, -1]] /= 2.0
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    t = special.ndtr(z)
    r = np.sqrt(_quantiles_by_inversion(d, z))
    s, ws = _direction_grid(d, max(96 if d <= 16 else 160, max_level + 48))
    m = np.arange(1, 2 * modes + 1)
    features = np.cos(math.pi * m[:, None, None] * special.ndtr(r[:, None] * s[None, :])[None])
    legendre = _legendre(max_level, d, s)
    radial = np.cos(math.pi * np.arange(2 * k_modes + 1)[:, None] * t[None, :])
    wz = trapezoid * density
    per_radius = np.einsum("kzs,ls->kzl", features[:modes] * ws, legendre)
    angular_mean = features @ ws
    pieces = angular_mean[:modes] * wz
    below = np.cumsum(pieces, axis=1) - 0.5 * pieces
    above = np.cumsum(pieces[:, ::-1], axis=1)[:, ::-1] - 0.5 * pieces
    omega = (12.0 * density + 1.0 / density) * trapezoid
    return {
        "mu": np.einsum("pz,kzl->kpl", radial[: k_modes + 1] * wz, per_radius),
        "diagonal": (angular_mean * wz) @ radial.T,
        "radial": 0.5 * (np.where(z < 0, below, -above) ** 2 * omega).sum(axis=1),
    }


@pytest.mark.parametrize("d", WIDTHS)
def test_coordinate_feature_moments_against_the_full_grid(d):
    top = max(2, degree_for_share(d, 8.0, 1.0 - 1e-13))
    new = coordinate_feature_moments(d, 4, 6, top)
    for key, value in _feature_moments_reference(d, 4, 6, top).items():
        _close(new[key], value)


def _radial_expectations_reference(d: int, modes: int) -> dict[str, np.ndarray | float]:
    z = np.linspace(-12.0, 12.0, 2001)
    weights = np.full(z.size, 2.0)
    weights[1::2], weights[[0, -1]] = 4.0, 1.0
    weights *= (z[1] - z[0]) / 3.0
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    r2 = _quantiles_by_inversion(d, z)
    cosines = np.cos(math.pi * np.arange(2 * modes + 1)[:, None] * special.ndtr(z)[None, :])
    expect = lambda values: (values * density * weights).sum(axis=-1)  # noqa: E731
    psi = np.exp(math.log(2.0) + 0.5 * d * np.log(0.5 * r2) - 0.5 * r2 - special.gammaln(0.5 * d))
    omega = (12.0 * density + 1.0 / density) * weights
    k = np.arange(1, modes + 1)
    sin_k = np.sin(math.pi * k[:, None] * special.ndtr(-np.abs(z))[None, :])
    return {
        "mean_r": expect(np.sqrt(r2)), "rho": expect(cosines[: modes + 1] * np.sqrt(r2)),
        "nu": expect(cosines[: modes + 1] * (r2 - d)), "nu_r2": expect(cosines * (r2 - d)),
        "nu_r4": expect(cosines * (r2 * r2 - d * (d + 2))),
        "rad_energy": (omega * sin_k**2).sum(axis=-1) / (2.0 * (math.pi * k) ** 2),
        "rad_moment": float((omega * psi**2).sum()) / (2.0 * d),
    }


@pytest.mark.parametrize("d", WIDTHS)
def test_radial_expectations_against_every_quantile_inverted(d):
    new = radial_expectations(d, 6)
    for key, value in _radial_expectations_reference(d, 6).items():
        _close(new[key], value)


@pytest.mark.parametrize("d", WIDTHS)
def test_mercer_series_of_any_length_are_prefixes_of_the_cached_one(d):
    for c in (4.0 / 3.0, 8.0, 16.0):
        direct = harmonics._chordal_log_series.__wrapped__(d, c, 7)  # computed at exactly this length
        assert harmonics._chordal_log_coefficients(d, 6, c) == direct
        assert harmonics._chordal_log_coefficients(d, 100, c)[:7] == direct
    assert log_zonal_dimensions(d, 70).tolist() == [log_zonal_dimension(d, level) for level in range(71)]


def _series_length_reference(d: int, c: float) -> int:
    level = 32
    while level < 4096:
        parts = harmonics._weighted_parts(d, level, c, "chordal", 1)
        if parts[-1] < 1e-18 * parts.sum():
            return level
        level *= 2
    return level


@pytest.mark.parametrize("d", WIDTHS + [1024, 4096])
def test_series_length_as_the_doubling_search(d):
    for c in (4.0 / 3.0, 8.0, 64.0, 600.0):
        assert _series_length(d, c, "chordal") == _series_length_reference(d, c)


# allorder_null_stats of the default configuration as computed before the per-width tables were
# restructured (every quantile inverted, no folding): mean, sd, upper-triangle correlations
REFERENCE_NULLS = {
    (256, 8): ([-0.2087393127466521, 0.009629665425193413, -0.15292883998002907, 0.012762780166574268,
                -0.5786393759495312, 23.9765625],
               [0.0006748297057080946, 0.006568965919060681, 0.00033061015256054304, 0.002852039493049646,
                0.0019750936482863506, 12.944230427666342],
               [0.7524532378633263, 0.4790591571191066, 0.47072745956209555, 0.44552755903433305, 0.3286415930236625,
                0.0, 0.098933190976053, 0.1250823655074612, 0.11478218277504938, 0.7667611728889208,
                0.3840569042337425, 0.4623240090870262, 0.49067574421419524, 0.4151929908594348, 0.2435901160150553]),
    (1024, 32): ([-0.22092482290959678, 0.0025144567171025904, -0.16319728218022322, 0.009072440508641805,
                  -0.787388160506434, 23.994140625],
                 [0.00014567967325745831, 0.0016433542346632596, 4.115040784547614e-05, 0.0005530463512694021,
                  0.0007434269326396922, 6.478591137859808],
                 [0.886872475299054, 0.2806825357167682, 0.19089727160101752, 0.14619300319678058,
                  0.17532679746607344, 0.0, 0.03304099937526703, 0.05286177435758591, 0.052811539552450354,
                  0.5572708498809872, 0.10628479853847411, 0.44932213223014306, 0.16958823666475975,
                  0.2681582287570884, 0.05360975684128837]),
    (100, 1): ([-0.13309053483993666, 0.023714788977076726, -0.07825576421224517, 0.01504404785747298,
                -0.14116153752430166, 23.94],
               [0.0023023674960620474, 0.01676974961323806, 0.0015189539992880253, 0.015831259135010635,
                0.0025242259176107428, 36.534876713901745],
               [0.5582868092836895, 0.6572556770256252, 0.6519205011034976, 1.0, 0.8171917131942615, 0.0,
                0.2873862078099106, 0.507874235949524, 0.5441049906580037, 0.5758509459900119, 0.6871998103959783,
                0.4236105341733267, 0.6612929382891356, 0.5393635909920161, 0.8064613621656055]),
    (500, 130): ([-0.22280546625789058, 0.005043140979341833, -0.1658120169747727, 0.06995653346239054,
                  -0.7306084731936715, 23.988],
                 [0.00028168485978682673, 0.0033656552813467696, 4.1518346892877e-05, 0.0010346181906405823,
                  0.001357244341119116, 3.2131612386605766],
                 [0.9328711260289425, 0.14544098369445457, 0.05594844490065446, 0.09364900806941513,
                  0.08891661180285058, 0.0, 0.007490016120220691, 0.018181508665612644, 0.02563053079501097,
                  0.30081444796915785, 0.0175064869627942, 0.4446711863372905, 0.08177353578850544,
                  0.1457105865817941, 0.008805736547613898]),
}


@pytest.mark.parametrize("shape", sorted(REFERENCE_NULLS))
def test_default_closed_form_null_is_unchanged(shape):
    mean, sd, upper = REFERENCE_NULLS[shape]
    stats = allorder_null_stats(WristbandConfig(), *shape)
    rows, cols = np.triu_indices(6, 1)
    np.testing.assert_allclose(stats.mean.numpy(), mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(stats.std.numpy(), sd, rtol=1e-12, atol=0)
    np.testing.assert_allclose(stats.corr.numpy()[rows, cols], upper, rtol=1e-12, atol=1e-15)
