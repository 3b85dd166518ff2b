"""check(x) end to end: calibration under the null, power, the report's forms and the figure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats
import torch

import latentshape
from latentshape.bench.distributions import x_shape
from latentshape.diagnostics import Report, check

TEST_NAMES = ["wristband total", "per-dim mean/std", "per-dim KS vs N(0,1)", "KS of t vs U[0,1]", "Mardia skewness", "Mardia kurtosis",
              "Henze-Zirkler", "kNN KL(P || N(0,I))"]


@pytest.fixture(scope="module")
def gaussian_report() -> Report:
    x = torch.randn(400, 6, generator=torch.Generator().manual_seed(11))
    return check(x, null_samples=60)


@pytest.fixture(scope="module")
def cube_report() -> Report:
    cube = np.random.default_rng(3).uniform(-math.sqrt(3), math.sqrt(3), size=(400, 6))
    return check(cube, null_samples=60)


def _p_values_under_null(n: int, d: int, batches: int, null_samples: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(n + d)
    p = [[test.p_value for test in check(torch.randn(n, d, generator=generator), null_samples=null_samples).tests]
         for _ in range(batches)]
    return np.array(p)


def test_every_p_value_of_check_is_uniform_under_the_null() -> None:
    # 200 fresh N(0, I) batches through check() itself; the cached null (1000 draws) is shared.
    p = _p_values_under_null(n=16, d=2, batches=200, null_samples=1000)
    for name, column in zip(TEST_NAMES, p.T):
        assert scipy.stats.kstest(column, "uniform").pvalue > 0.01, name


@pytest.mark.slow
@pytest.mark.parametrize("n, d", [(64, 1), (128, 16)])
def test_every_p_value_of_check_is_uniform_under_the_null_more_shapes(n: int, d: int) -> None:
    p = _p_values_under_null(n=n, d=d, batches=200, null_samples=2000)
    for name, column in zip(TEST_NAMES, p.T):
        assert scipy.stats.kstest(column, "uniform").pvalue > 0.01, name


def test_gaussian_is_accepted_and_every_test_present(gaussian_report: Report) -> None:
    assert [test.name for test in gaussian_report.tests] == TEST_NAMES
    assert gaussian_report.is_gaussian and gaussian_report.verdict.startswith("consistent with N(0, I)")
    assert gaussian_report.n == 400 and gaussian_report.d == 6
    assert abs(gaussian_report.wristband["total"]) < 4
    assert set(gaussian_report.wristband) == {"total", "rep", "rad", "ang", "mom", "sharp", "coord"}


def test_uniform_cube_is_rejected_with_matched_moments(cube_report: Report) -> None:
    rejected = set(cube_report.rejected_by)
    assert not cube_report.is_gaussian
    assert "per-dim mean/std" not in rejected  # mean 0 and variance 1 per axis: that test cannot see it
    assert "per-dim KS vs N(0,1)" in rejected  # but the marginals' shape is wrong
    assert {"wristband total", "KS of t vs U[0,1]"} <= rejected
    assert "Holm" in cube_report.verdict and "NOT N(0, I)" in cube_report.verdict


@pytest.mark.parametrize("impostor", ["shifted", "scaled", "heavy tails", "mixture", "x shape"])
def test_non_gaussian_inputs_are_rejected(impostor: str) -> None:
    rng = np.random.default_rng(5)
    n, d = 500, 4
    if impostor == "shifted":
        x, expected = rng.standard_normal((n, d)) + np.array([0.0, 0.0, 0.4, 0.0]), "per-dim mean/std"
    elif impostor == "scaled":
        x, expected = 1.25 * rng.standard_normal((n, d)), "KS of t vs U[0,1]"
    elif impostor == "heavy tails":
        x, expected = rng.standard_t(3.0, size=(n, d)) / math.sqrt(3.0), "Mardia kurtosis"
    elif impostor == "mixture":
        centres = np.where(rng.random((n, 1)) < 0.5, -1.0, 1.0) * np.array([0.9, 0, 0, 0])
        x, expected = centres + rng.standard_normal((n, d)) * np.array([math.sqrt(1 - 0.81), 1, 1, 1]), "wristband total"
    else:
        x, expected = x_shape(n, d, generator=torch.Generator().manual_seed(1)), "Henze-Zirkler"
    report = check(x, null_samples=60)
    assert not report.is_gaussian
    assert expected in report.rejected_by


def test_one_bimodal_coordinate_is_caught_by_the_marginal_test() -> None:
    x = np.random.default_rng(8).standard_normal((2000, 32))
    x[:, 3] = np.where(np.arange(2000) % 2 == 0, -0.8, 0.8) + 0.6 * x[:, 3]  # mean 0, variance 1, two modes
    report = check(x, null_samples=30)
    assert report.rejected_by == ["per-dim KS vs N(0,1)"] or "per-dim KS vs N(0,1)" in report.rejected_by
    assert "dim 3" in report.test("per-dim KS vs N(0,1)").detail


def test_worst_dimension_is_named() -> None:
    x = np.random.default_rng(2).standard_normal((600, 10))
    x[:, 7] = 1.4 * x[:, 7] + 0.2
    report = check(x, null_samples=40)
    assert report.worst_dimensions(1)[0]["dim"] == 7
    assert "dim 7" in str(report)


def test_to_dict_is_strict_json(cube_report: Report) -> None:
    payload = json.loads(json.dumps(cube_report.to_dict(), allow_nan=False))
    assert payload["n"] == 400 and payload["d"] == 6 and payload["is_gaussian"] is False
    assert [test["name"] for test in payload["tests"]] == TEST_NAMES
    assert all(0 < test["p_value"] <= 1 and test["p_holm"] >= test["p_value"] for test in payload["tests"])
    assert len(payload["dimensions"]["mean"]) == 6 and payload["wristband"]["total"] > 5


def test_printed_table_names_tests_and_draw_counts(gaussian_report: Report) -> None:
    text = str(gaussian_report)
    assert "N = 400, d = 6" in text and gaussian_report.verdict in text
    assert all(name in text for name in TEST_NAMES)
    assert "60 null draws" in text and "Holm" in text


def test_large_input_subsamples_pairwise_statistics_and_says_so() -> None:
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(4))
    report = check(x, null_samples=30, max_pairwise=100)
    assert report.pairwise_rows == 100 and report.n == 300
    assert any("subsample of 100 of 300 rows" in note for note in report.notes)
    assert "MC 30 @ (100, 3)" in report.test("Mardia skewness").null


def test_one_dimension_and_duplicates_work() -> None:
    x = torch.randn(50, 1, generator=torch.Generator().manual_seed(0))
    report = check(torch.cat([x, x]), null_samples=30)
    assert all(math.isfinite(test.p_value) for test in report.tests)
    assert report.d == 1


@pytest.mark.parametrize(
    "bad, error",
    [(torch.randn(7, 3), ValueError), (torch.randn(10), ValueError), (torch.randn(2, 10, 3), ValueError),
     (torch.ones(10, 3, dtype=torch.int64), TypeError), ([[1.0, 2.0]] * 10, TypeError)],
)
def test_bad_input_raises_clear_errors(bad, error) -> None:
    with pytest.raises(error):
        check(bad)


def test_nan_rows_are_refused() -> None:
    x = torch.randn(20, 3)
    x[4, 1] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        check(x)


def test_top_level_exports() -> None:
    assert latentshape.check is check and latentshape.Report is Report
    assert "check" in latentshape.__all__ and "Report" in latentshape.__all__


def test_plot_writes_a_valid_non_trivial_png(cube_report: Report, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.image

    path = cube_report.plot(tmp_path / "figure.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width > 1000 and height > 600
    # Non-trivial: many distinct colours, and ink in every one of the six panels.
    pixels = (image[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 200
    for row in range(2):
        for column in range(3):
            panel = image[row * height // 2:(row + 1) * height // 2, column * width // 3:(column + 1) * width // 3, :3]
            assert (panel.mean(axis=-1) < 0.9).mean() > 0.02, (row, column)


@pytest.mark.parametrize("d", [1, 2])
def test_plot_handles_low_dimensions(d: int, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    report = check(torch.randn(100, d, generator=torch.Generator().manual_seed(d)), null_samples=30)
    assert report.plot(tmp_path / "low.png").stat().st_size > 20_000


def test_check_alpha_takes_numpy_scalars_and_0d_tensors() -> None:
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    expected = check(x, null_samples=20, alpha=0.05).to_dict()["tests"]
    for alpha in (np.float32(0.05), torch.tensor(0.05)):
        got = check(x, null_samples=20, alpha=alpha).to_dict()["tests"]
        assert [t["p_value"] for t in got] == pytest.approx([t["p_value"] for t in expected])
    with pytest.raises(TypeError, match="alpha must be a number"):
        check(x, null_samples=20, alpha=True)
