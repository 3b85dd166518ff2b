"""``bench train``: the protocol on a tiny configuration, its building blocks against references, the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

from latentshape.cli import main

import numpy as np
import pytest
import torch

from latentshape.bench import train, write_report, zscore_growth
from latentshape.bench.digits import augment, load_digits_split, minibatches
from latentshape.bench.embedding_metrics import collapse_indicators, effective_rank
from latentshape.bench.train_report import load_table, markdown
from latentshape.bench.train_summary import power_law_exponent, recommend, summarize, weight_for_drop

TINY = {"dims": {"supervised": (4,), "self_supervised": (4,), "stochastic": (4,)},
        "weights": {"supervised": (0.01,), "self_supervised": (1.0,), "stochastic": (0.1,)},
        "epochs": {"supervised": 1, "self_supervised": 1, "stochastic": 1}, "seeds": 1,
        "scaling_batches": (64,), "scaling_d": 4, "scaling_seeds": 1, "growth_sizes": (32, 64), "growth_repeats": 2,
        "check_rows": 300}
CHEAP = ["none", "moment_matching", "vicreg", "kl", "adversarial"]


@pytest.fixture(scope="module")
def tiny_table():
    return train(regularizers=CHEAP, progress=False, **TINY)


def test_tiny_protocol_has_every_cell_with_finite_metrics(tiny_table) -> None:
    cells = [r for r in tiny_table.records if r["part"] == "cell"]
    seen = {(r["setting"], r["regularizer"], r["batch_size"]) for r in cells}
    assert seen == {("supervised", "none", 128), ("supervised", "moment_matching", 128), ("supervised", "moment_matching", 64),
                    ("self_supervised", "none", 128), ("self_supervised", "moment_matching", 128),
                    ("self_supervised", "vicreg", 128), ("stochastic", "none", 128), ("stochastic", "kl", 128),
                    ("supervised", "none", 64),
                    ("stochastic", "adversarial", 128)}
    for record in cells:
        keys = ["accuracy", "test_rejected", "train_rejected", "test_hz_log10p", "test_knn_kl", "train_wristband",
                "min_sd", "effective_rank", "ms_per_step"]
        assert all(math.isfinite(record[key]) for key in keys), record
        assert 0 <= record["accuracy"] <= 1 and 0 <= record["test_rejected"] <= 8 and not record["diverged"]
        assert 1 <= record["effective_rank"] <= 4 + 1e-9
    assert {r["regularizer"] for r in tiny_table.records if r["part"] == "growth"} == {"moment_matching", "vicreg"}


def test_tiny_report_writes_markdown_and_plots(tiny_table, tmp_path) -> None:
    paths = write_report(tiny_table, tmp_path, command="latentshape bench train --tiny")
    text = (tmp_path / "bench_train.md").read_text()
    for needle in ("### supervised", "### self_supervised", "### stochastic", "| moment_matching | 0.01 |",
                   "Recommendations", "**supervised, d = 4**", "w_drop", "latentshape bench train --tiny"):
        assert needle in text, needle
    names = {p.name for p in paths}
    again = load_table(tmp_path / "bench_train.json")
    assert again.records == tiny_table.records and markdown(again) == markdown(tiny_table)
    assert {"bench_train.md", "bench_train.json", "bench_train_supervised.png", "bench_train_stochastic.png", "bench_train_scaling.png"} <= names
    assert all((tmp_path / name).stat().st_size > 1000 for name in names if name.endswith(".png"))


def test_minibatches_cover_every_row_once_with_a_short_last_batch() -> None:
    batches = minibatches(1437, 128, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [128] * 11 + [29]
    assert torch.equal(torch.cat(batches).sort().values, torch.arange(1437))
    assert [len(b) for b in minibatches(257, 128, torch.Generator().manual_seed(0))] == [128, 129]  # no 1-row batch


def test_augment_is_a_zero_filled_shift_of_at_most_one_pixel() -> None:
    images = load_digits_split().train_x[:50]
    views = augment(images, torch.Generator().manual_seed(3), noise=0.0, mask=0.0).reshape(50, 8, 8)
    padded = np.pad(images.reshape(50, 8, 8).numpy(), ((0, 0), (1, 1), (1, 1)))
    shifts = [(a, b) for a in range(3) for b in range(3)]
    for view, source in zip(views.numpy(), padded):
        assert any(np.array_equal(view, source[a:a + 8, b:b + 8]) for a, b in shifts)
    masked = augment(torch.ones(400, 64), torch.Generator().manual_seed(0), shift=0, noise=0.0, mask=0.25)
    values = np.unique(masked.numpy())
    assert values.shape == (2,) and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.75)
    assert abs(float(masked.mean()) - 1.0) < 0.02         # inverted scaling keeps the mean intensity


def test_effective_rank_and_min_sd_match_their_definitions() -> None:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 4, generator=generator, dtype=torch.float64) @ torch.diag(torch.tensor([3.0, 1.0, 0.5, 0.1],
                                                                                                 dtype=torch.float64))
    eigenvalues = np.linalg.eigvalsh(np.cov(z.numpy().T))
    p = eigenvalues / eigenvalues.sum()
    assert effective_rank(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    assert collapse_indicators(z)["min_sd"] == pytest.approx(float(z[:, 3].std()), rel=1e-12)
    assert math.isnan(effective_rank(torch.ones(10, 3)))


def test_weight_for_drop_and_power_law_exponent() -> None:
    assert weight_for_drop([1e-3, 1e-2, 1e-1], [0.99, 0.98, 0.90], 0.94) == pytest.approx(10 ** -1.5)
    assert weight_for_drop([1e-3, 1e-2], [0.90, 0.80], 0.95) == 0.0
    assert weight_for_drop([1e-3, 1e-2], [0.99, 0.99], 0.95) == math.inf
    assert power_law_exponent([64, 128, 256, 512], [5 * n ** -0.5 for n in (64, 128, 256, 512)]) == pytest.approx(-0.5)
    assert math.isnan(power_law_exponent([64, 128], [-1.0, 2.0]))


def _row(name: str, w: float, accuracy: float, rejected: float, train_rejected: float = 8.0) -> dict:
    return {"part": "cell", "setting": "supervised", "d": 8, "regularizer": name, "weight": w, "batch_size": 128, "seed": 0,
            "accuracy": accuracy, "test_rejected": rejected, "train_rejected": train_rejected, "test_knn_kl": 1.0,
            "diverged": False}


def test_recommendation_is_the_most_gaussian_row_within_one_point() -> None:
    rows = summarize([_row("none", 0.0, 0.98, 8), _row("a", 0.01, 0.975, 5), _row("a", 0.1, 0.90, 0, 0),
                      _row("b", 0.01, 0.972, 3), _row("b", 0.1, 0.965, 1), _row("c", 0.01, 0.99, 7)])
    (line,) = recommend(rows)   # reference: the unregularized 0.98, not c's 0.99
    assert "reference accuracy 0.980" in line and "b at w = 0.01" in line and "rejects 3.0 (none: 8.0)" in line
    assert "Passing check on both embeddings (all seeds): a at w = 0.1, accuracy 0.900" in line


def test_zscore_growth_of_a_fixed_departure_is_close_to_linear_in_n() -> None:
    x = torch.randn(1200, 3, generator=torch.Generator().manual_seed(1)) * torch.tensor([1.6, 1.0, 1.0])
    rows = zscore_growth(x, (100, 200, 400), repeats=4, regularizers=["moment_matching"])
    exponent = power_law_exponent([r["n"] for r in rows], [r["value"] for r in rows])
    assert 0.7 < exponent < 1.3


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentshape.cli", "bench", "train", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_cli_tiny_run_writes_the_report(tmp_path) -> None:
    result = _bench("--tiny", "--out", str(tmp_path), "--regularizers", "none", "moment_matching", "kl")
    assert result.returncode == 0, result.stderr
    assert "### stochastic" in (tmp_path / "bench_train.md").read_text()
    assert (tmp_path / "bench_train_supervised.png").exists() and "bench train --tiny" in (tmp_path / "bench_train.md").read_text()


def test_cli_unwritable_out_exits_2_with_one_line_before_any_work(tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["bench", "train", "--tiny", "--out", str(blocker / "sub")]) == 2
    error = capsys.readouterr().err
    assert "cannot write into" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1, error


def test_cli_mistakes_exit_2_with_one_line(tmp_path, capsys) -> None:
    for args, message in ((("--regularizers", "nope"), "unknown regularizer"), (("--distributions", "x"), "does not apply"),
                          (("--quick",), "one of --quick and --tiny")):
        assert main(["bench", "train", "--tiny", "--out", str(tmp_path), *args]) == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1, error


@pytest.mark.slow
def test_worker_processes_give_the_same_records_as_one_process() -> None:
    config = dict(settings=["supervised"], regularizers=["none", "moment_matching"], dims={"supervised": (4,)},
                  weights={"supervised": (0.01, 0.1)}, epochs={"supervised": 1}, seeds=1, scaling_batches=(),
                  growth_sizes=(), check_rows=200, progress=False)
    timing = {"ms_per_step"}
    one, two = train(jobs=1, **config), train(jobs=2, **config)
    assert [{k: v for k, v in r.items() if k not in timing} for r in one.records] == \
           [{k: v for k, v in r.items() if k not in timing} for r in two.records]
