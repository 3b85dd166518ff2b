"""A user's mistakes get a clear error that names the argument, never a bare IndexError, a
ZeroDivisionError, a torch-internal RuntimeError or a silent inf; the CLI answers them with exit
status 2 and one line. Inputs that are fine (float64, transposed and strided views) still work."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latentshape
import latentshape.functional as F
from latentshape.cli import main
from latentshape.diagnostics.exact_nulls import henze_zirkler_null_moments
from latentshape.diagnostics.statistics import henze_zirkler_smoothing


def _x(n: int = 32, d: int = 4, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _with_nan() -> torch.Tensor:
    x = _x()
    x[3, 1] = float("nan")
    return x


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


# -- the command line ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mistakes")
    paths = {"x": root / "x.npy", "wide": root / "wide.npy", "bool": root / "flags.pt", "header": root / "header.csv",
             "mixed": root / "mixed.pt"}
    np.save(paths["x"], np.random.default_rng(0).standard_normal((64, 3)))
    np.save(paths["wide"], np.random.default_rng(1).standard_normal((8, 1000)))  # huge d, small N
    torch.save(torch.ones(64, 3, dtype=torch.bool), paths["bool"])
    paths["header"].write_text("a,b,c\n")
    torch.save({"epoch": 3, "z": torch.randn(64, 3)}, paths["mixed"])
    return paths


CLI_ERRORS = [
    (["--seed", str(10**23)], "x", ("--seed must be in",)),
    ([], "bool", ("holds bool values", "expected real numbers")),
    ([], "header", ("has 0 row(s)", "at least 8")),
    (["--key", "epoch"], "mixed", ("entry 'epoch'", "holds a int, not a tensor", "tensors: z")),
]


@pytest.mark.filterwarnings("error::UserWarning")  # a loader's warning would be a second line on stderr
@pytest.mark.parametrize("extra, name, needles", CLI_ERRORS, ids=["seed-overflow", "bool-pt", "header-only-csv", "pt-key-not-a-tensor"])
def test_cli_mistakes_exit_2_with_one_line(files, capsys, extra, name, needles) -> None:
    assert main(["check", str(files[name]), "--null-samples", "20", *extra]) == 2
    _one_line_error(capsys, "latentshape check: error:", *needles)


@pytest.mark.parametrize("header", [False, True])
def test_a_spreadsheet_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path, capsys, header) -> None:
    import json

    rows = np.random.default_rng(2).standard_normal((20, 3))
    text = ("a,b,c\n" if header else "") + "\n".join(",".join(str(float(v)) for v in row) for row in rows)
    path = tmp_path / "excel.csv"
    path.write_text(text, encoding="utf-8-sig")
    assert main(["check", str(path), "--json", "--null-samples", "20"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["n"] == 20 and (("skipped a header row" in payload["notes"]) == header)


def test_cli_checks_a_wide_small_batch(files, capsys) -> None:
    # d = 1000 at N = 8: the Henze-Zirkler null's moments underflow float64 (was a ZeroDivisionError)
    assert main(["check", str(files["wide"]), "--null-samples", "20", "--json"]) == 0
    assert '"d": 1000' in capsys.readouterr().out


@pytest.mark.parametrize("n, d", [(10, 5000), (64, 1000), (8, 1000)])
def test_henze_zirkler_null_at_huge_d_is_finite(n: int, d: int) -> None:
    moments = henze_zirkler_null_moments(n, d, henze_zirkler_smoothing(n, d))
    assert moments.mean == pytest.approx(1.0) and all(math.isfinite(v) for v in moments)
    assert moments.std >= 0
    small = henze_zirkler_null_moments(64, 3, henze_zirkler_smoothing(64, 3))  # unchanged where it is usable
    assert small.std > 0.01 and math.isfinite(small.skewness)


def test_demo_refuses_a_seed_torch_cannot_take(tmp_path, capsys, monkeypatch) -> None:
    from latentshape import demo

    monkeypatch.setattr(demo, "run_demo", lambda **kwargs: pytest.fail("the demo ran with a bad seed"))
    assert main(["demo", "--epochs", "0", "--seed", str(10**20), "--out", str(tmp_path)]) == 2
    _one_line_error(capsys, "latentshape demo: error:", "--seed must be an integer")


def test_bench_runs_a_name_given_twice_once(tmp_path, capsys, monkeypatch) -> None:
    from latentshape.bench import protocols

    seen = {}

    def detection(**settings):
        seen.update(settings)
        raise ValueError("stopped after the settings")

    monkeypatch.setattr(protocols, "detection", detection)
    assert main(["bench", "detection", "--tiny", "--out", str(tmp_path), "--regularizers", "mmd", "wristband", "mmd",
                 "--distributions", "x", "x"]) == 2
    capsys.readouterr()
    assert seen["regularizers"] == ["mmd", "wristband"] and seen["distributions"] == ["x"]


# -- check() ---------------------------------------------------------------------------------------
CHECK_ERRORS = [
    ({"neighbors": 2.5}, TypeError, "neighbors must be an integer"),
    ({"null_samples": 25.5}, TypeError, "null_samples must be an integer"),
    ({"null_samples": "40"}, TypeError, "null_samples must be an integer"),
    ({"max_pairwise": 8.5}, TypeError, "max_pairwise must be an integer"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"seed": 2**70}, ValueError, "seed must be in"),
    ({"alpha": "0.05"}, TypeError, "alpha must be a number"),
    ({"wristband": "wristband"}, TypeError, "wristband must be a WristbandLoss"),
    ({"wristband": latentshape.GaussianMMD()}, TypeError, "wristband must be a WristbandLoss"),
]


@pytest.mark.parametrize("options, error, message", CHECK_ERRORS, ids=[str(c[0]) for c in CHECK_ERRORS])
def test_check_names_its_bad_option(options, error, message) -> None:
    with pytest.raises(error, match=message):
        latentshape.check(_x(), **{"null_samples": 20, **options})


# -- the functional cores --------------------------------------------------------------------------
VICREG = F.vicreg_variance_covariance
FUNCTIONAL_ERRORS = [
    ("vicreg 1-D", lambda: VICREG(torch.randn(8)), ValueError, r"shape \(\.\.\., N, d\)"),
    ("vicreg 1 row", lambda: VICREG(_x(1)), ValueError, "at least 2 points"),
    ("kl no rows", lambda: F.gaussian_kl_diag(torch.zeros(0, 2), torch.zeros(0, 2)), ValueError,
     r"at least 1 point \(row\) per batch"),
    ("vicreg integers", lambda: VICREG(torch.ones(8, 3, dtype=torch.int64)), TypeError, "floating dtype"),
    ("vicreg complex", lambda: VICREG(_x().to(torch.complex64)), TypeError, "floating dtype"),
    ("vicreg list", lambda: VICREG([[1.0, 2.0]] * 8), TypeError, "torch.Tensor"),
    ("vicreg NaN", lambda: VICREG(_with_nan()), ValueError, "NaN or Inf"),
    ("vicreg d = 0", lambda: VICREG(torch.zeros(8, 0)), ValueError, "d = 0"),
    ("vicreg target_std", lambda: VICREG(_x(), target_std=-1.0), ValueError, "target_std must be a finite number > 0"),
    ("vicreg overflow", lambda: VICREG(_x() * 1e30), ValueError, "VICReg loss .* beyond the range"),
    ("VICRegLoss overflow", lambda: latentshape.VICRegLoss()(_x() * 1e30), ValueError, "beyond the range"),
    ("mmd zero width", lambda: F.gaussian_mmd(_x(), (0.0,)), ValueError, "bandwidths must be positive"),
    ("mmd negative width", lambda: F.gaussian_mmd(_x(), (-1.0,)), ValueError, "bandwidths must be positive"),
    ("mmd scalar width", lambda: F.gaussian_mmd(_x(), 1.0), TypeError, "bandwidths must be a sequence"),
    ("GaussianMMD scalar width", lambda: latentshape.GaussianMMD(bandwidths=1.0), TypeError, "bandwidths must be a sequence"),
    ("GaussianMMD unbiased", lambda: latentshape.GaussianMMD(unbiased="no"), ValueError, "unbiased must be True or False"),
    ("moment matching alpha", lambda: F.moment_matching_loss(_x(), alpha=-1.0), ValueError, "alpha must be a finite number >= 0"),
    ("moment matching mean shape", lambda: F.moment_matching_loss(_x(), mean=torch.zeros(3)), ValueError,
     r"mean must have shape \(4,\)"),
    ("moment matching cov shape", lambda: F.moment_matching_loss(_x(), cov=torch.eye(3)), ValueError,
     r"cov must have shape \(4, 4\)"),
    ("moment matching bool mean", lambda: F.moment_matching_loss(_x(), mean=torch.zeros(4, dtype=torch.bool)),
     TypeError, "mean must be None or a real tensor"),
    ("MomentMatchingLoss NaN mean", lambda: latentshape.MomentMatchingLoss(mean=torch.full((4,), math.nan)),
     ValueError, "mean holds NaN or Inf"),
    ("kl_full singular", lambda: F.gaussian_kl_full(torch.zeros(8, 2), torch.zeros(8, 2, 2)), ValueError,
     "zero on its diagonal"),
    ("kl_diag overflow", lambda: F.gaussian_kl_diag(torch.zeros(8, 2), torch.full((8, 2), 200.0)), ValueError,
     "KL divergence is .* beyond the range"),
    ("kl_full overflow", lambda: F.gaussian_kl_full(_x() * 1e30, torch.eye(4).expand(32, 4, 4)), ValueError,
     "KL divergence is .* beyond the range"),
    ("reparameterize list", lambda: latentshape.reparameterize([0.0], [0.0]), TypeError, "mu must be a floating tensor"),
    ("reparameterize integers", lambda: latentshape.reparameterize(torch.zeros(4, dtype=torch.long), torch.zeros(4)),
     TypeError, "mu must be a floating tensor"),
    ("reparameterize_full integers", lambda: latentshape.reparameterize_full(torch.zeros(2), torch.eye(2, dtype=torch.long)),
     TypeError, "scale_tril must be a floating tensor"),
    ("sigreg no slices", lambda: F.sigreg_statistic(_x(), torch.zeros(4, 0)), ValueError, "at least one slice"),
    ("sliced W2 no slices", lambda: F.sliced_wasserstein_gaussian(_x(), torch.zeros(4, 0)), ValueError, "at least one slice"),
    ("sigreg t_max 0", lambda: F.sigreg_statistic(_x(), torch.eye(4), t_max=0.0), ValueError, "t_max must be a positive"),
    ("sigreg t_max < 0", lambda: F.sigreg_statistic(_x(), torch.eye(4), t_max=-1.0), ValueError, "t_max must be a positive"),
    ("kde bound shape", lambda: F.kde_cross_entropy(torch.randn(8, 5), torch.rand(5), torch.zeros(3), torch.ones(3)),
     ValueError, r"low must be a number or a tensor broadcastable .* \(8,\)"),
    ("uniformity normalize", lambda: latentshape.UniformityLoss(normalize="yes"), ValueError, "normalize must be True or False"),
    ("alignment normalize", lambda: latentshape.AlignmentLoss(normalize=1), ValueError, "normalize must be True or False"),
    ("fit_prototypes integer dtype", lambda: latentshape.fit_prototypes(3, 4, steps=5, dtype=torch.int64), TypeError,
     "dtype must be a floating torch.dtype"),
    ("wristband_components config", lambda: F.wristband_components(_x(), config="spectral"), TypeError,
     "config must be a WristbandConfig"),
    ("wristband_components weight", lambda: F.wristband_components(_x(), lambda_rad=-1.0), ValueError,
     "must be finite numbers >= 0"),
]


@pytest.mark.parametrize("call, error, message", [c[1:] for c in FUNCTIONAL_ERRORS], ids=[c[0] for c in FUNCTIONAL_ERRORS])
def test_functional_mistakes_name_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message) as raised:
        call()
    assert "\n" not in str(raised.value)


def test_vicreg_functional_equals_the_module_on_good_input() -> None:
    x = _x(64, 6, torch.float64)
    module = latentshape.VICRegLoss(variance_weight=2.0, covariance_weight=0.5)
    assert torch.equal(module(x), VICREG(x, variance_weight=2.0, covariance_weight=0.5))
    # the scale that overflowed float32 is a float64 success
    assert torch.isfinite(VICREG(x * 1e30)) and VICREG(x * 1e30) > 1e50


VIEWS = {
    "vicreg": VICREG,
    "moment_matching": F.moment_matching_loss,
    "mmd": lambda x: F.gaussian_mmd(x, (1.0,)),
    "wristband_energy": F.wristband_energy,
    "uniformity": F.uniformity_loss,
    "sigreg": lambda x: F.sigreg_statistic(x, torch.eye(x.shape[-1], dtype=x.dtype)),
}


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_float64_transposed_and_strided_views_work(name) -> None:
    function = VIEWS[name]
    wide = _x(64, 8, torch.float64)
    transposed = wide.t().contiguous().t()
    strided = wide[::2, ::2]
    assert not transposed.is_contiguous() and not strided.is_contiguous()
    torch.testing.assert_close(function(transposed), function(wide.clone()))
    torch.testing.assert_close(function(strided), function(strided.contiguous()))
    assert function(wide).dtype == torch.float64


# -- population mode -------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["moment_matching", "wristband"])
@pytest.mark.parametrize("horizon", [{"window": 4}, {"momentum": 0.2}])
def test_an_overflowing_batch_is_refused_and_never_enters_the_population(loss, horizon) -> None:
    inner = latentshape.MomentMatchingLoss(null_samples=32) if loss == "moment_matching" else \
        latentshape.WristbandLoss(null_samples=32)
    population, reference = latentshape.PopulationMode(inner, **horizon), latentshape.PopulationMode(inner, **horizon)
    first, second = _x(32, 4), _x(32, 4) * 0.5 + 0.1
    population(first), reference(first)
    with pytest.raises(ValueError, match="beyond the range|overflow"):
        population(_x(32, 4) * 1e30)
    assert int(population.steps) == 1
    torch.testing.assert_close(population(second), reference(second))


class _FullDisk:
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:  # nothing buffered: a full disk fails on the first write
        pass


def test_a_report_that_cannot_be_written_to_stdout_is_one_line(files, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", _FullDisk())
    assert main(["check", str(files["x"]), "--json", "--null-samples", "20"]) == 2
    _one_line_error(capsys, "cannot write the report to standard output", "No space left on device")


# -- the autoencoder's training loop ---------------------------------------------------------------
def _autoencoder():
    pytest.importorskip("zuko")
    return latentshape.GaussianAutoencoder(6, 2, hidden=8, flow_transforms=1, flow_hidden=(8,))


_PIXELS = torch.rand(16, 6, generator=torch.Generator().manual_seed(0))
TRAINING_ERRORS = [
    ("batch_size 0", {"batch_size": 0}, ValueError, "batch_size must be an integer >= 2"),
    ("batch_size 1", {"batch_size": 1}, ValueError, "batch_size must be an integer >= 2"),
    ("learning_rate 0", {"learning_rate": 0.0}, ValueError, "learning_rate must be a finite number > 0"),
    ("gaussian_weight < 0", {"gaussian_weight": -1.0}, ValueError, "gaussian_weight must be a finite number >= 0"),
    ("latent_noise < 0", {"latent_noise": -0.1}, ValueError, "latent_noise must be a finite number >= 0"),
    ("regularizer", {"regularizer": 3}, TypeError, "regularizer must be a callable"),
    ("bce outside [0, 1]", {"data": _PIXELS * 10 - 5}, ValueError, r"needs data in \[0, 1\]"),
    ("NaN data", {"data": torch.full((16, 6), math.nan)}, ValueError, "data holds NaN or Inf"),
    ("numpy data", {"data": _PIXELS.numpy()}, TypeError, "data must be a floating tensor"),
    ("not an autoencoder", {"model": torch.nn.Linear(6, 2)}, TypeError, "model must be a GaussianAutoencoder"),
]


@pytest.mark.parametrize("options, error, message", [c[1:] for c in TRAINING_ERRORS], ids=[c[0] for c in TRAINING_ERRORS])
def test_training_mistakes_are_named_before_any_step(options, error, message) -> None:
    arguments = {"model": _autoencoder(), "data": _PIXELS, "epochs": 1, "batch_size": 8, "progress": False, **options}
    with pytest.raises(error, match=message):
        latentshape.train_autoencoder(**arguments)
