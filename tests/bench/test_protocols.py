"""The three protocols on tiny configurations: finite scores, Gaussian near 0, impostors detected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentshape.bench import detection, gaussianize, markdown, sample, speed, w2_exact, w2_reference, write_report


@pytest.fixture(scope="module")
def detected():
    return detection(["gaussian", "anisotropic", "subspace"], ["wristband", "moment_matching"], n=128, dims=(2,), repeats=2,
                     progress=False)


def test_detection_scores_are_finite_with_gaussian_near_zero(detected) -> None:
    assert len(detected.records) == 6
    assert all(math.isfinite(r["z"]) and math.isfinite(r["z_sd"]) for r in detected.records)
    for name in ("wristband", "moment_matching"):
        assert abs(detected.value("z", distribution="gaussian", regularizer=name)) < 4


def test_detection_flags_clearly_non_gaussian_sources(detected) -> None:
    assert detected.value("z", distribution="anisotropic", regularizer="wristband") > 5
    assert detected.value("z", distribution="subspace", regularizer="wristband") > 5
    assert detected.value("z", distribution="subspace", regularizer="moment_matching") > 5


def test_w2_exact_matches_a_brute_force_assignment() -> None:
    from itertools import permutations

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    best = min(sum(((a[i] - b[p[i]]) ** 2).sum() for i in range(5)) for p in permutations(range(5)))
    assert w2_exact(a, b) == pytest.approx(math.sqrt(best / 5))


def test_w2_score_of_fresh_gaussian_clouds_is_standard() -> None:
    reference = w2_reference(48, 2, fresh=16, seed=3)
    scores = [reference.score(sample("gaussian", 48, 2, seed=500 + k)) for k in range(16)]
    assert abs(np.mean(scores)) < 1.0 and 0.4 < np.std(scores) < 2.0
    assert reference.score(sample("subspace", 48, 2, seed=0)) > 3


def test_gaussianize_keeps_a_gaussian_start_near_zero_and_repairs_an_anisotropic_one() -> None:
    table = gaussianize(["gaussian", "anisotropic"], ["wristband"], n=64, dims=(2,), steps=40,
                        learning_rates=(0.1,), fresh=16, progress=False)
    assert all(math.isfinite(r["z"]) for r in table.records)
    assert abs(table.value("z", distribution="gaussian", regularizer="start")) < 4
    start = table.value("z", distribution="anisotropic", regularizer="start")
    assert start > 4 and table.value("z", distribution="anisotropic", regularizer="wristband") < 2
    assert table.value("lr", distribution="anisotropic", regularizer="wristband") == 0.1


def test_gaussianize_runs_the_adversarial_prior_with_its_critic() -> None:
    table = gaussianize(["x"], ["adversarial"], n=32, dims=(2,), steps=5, learning_rates=(0.01,), fresh=8,
                        progress=False)
    assert math.isfinite(table.value("z", regularizer="adversarial"))


def test_protocols_refuse_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown regularizer"):
        detection(regularizers=["nope"], progress=False)
    with pytest.raises(ValueError, match="unknown distribution"):
        gaussianize(distributions=["nope"], progress=False)


def test_speed_measures_time_and_memory_in_a_subprocess(tmp_path) -> None:
    table = speed(["moment_matching"], sizes=((64, 4),), repeats=1, progress=False)
    (record,) = table.records
    assert record["seconds"] > 0 and isinstance(record["peak_bytes"], int)
    assert "moment_matching" in markdown(table)


def test_report_writes_markdown_and_png(tmp_path, detected) -> None:
    paths = write_report(detected, tmp_path, command="latentshape bench detection")
    text = (tmp_path / "bench_detection.md").read_text()
    assert "| source | wristband | moment_matching |" in text and "latentshape bench detection" in text
    assert (tmp_path / "bench_detection.png").stat().st_size > 1000 and len(paths) == 2
