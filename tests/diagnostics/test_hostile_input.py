"""`check` and the commands under hostile input: huge scales, unwritable outputs, meta tensors, integers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import latentshape
from latentshape.cli import main

FAST = ["--null-samples", "20"]


def _scaled(scale: float, n: int = 100, d: int = 4) -> np.ndarray:
    return scale * np.random.default_rng(0).standard_normal((n, d))


@pytest.fixture(scope="module")
def huge_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("huge")
    paths = {name: root / f"{name}.npy" for name in ("e10", "e30", "e160")}
    for name, scale in (("e10", 1e10), ("e30", 1e30), ("e160", 1e160)):
        np.save(paths[name], _scaled(scale))
    return paths


@pytest.mark.parametrize("scale", [1e10, 1e30])
def test_a_far_from_gaussian_scale_gives_a_printable_report_and_strict_json(scale: float) -> None:
    report = latentshape.check(torch.from_numpy(_scaled(scale)), null_samples=20)
    text = str(report)
    assert "NOT N(0, I)" in text and "nan" not in text.lower()
    assert all(len(line) < 400 for line in text.splitlines())  # no 100-digit numbers
    json.dumps(report.to_dict(), allow_nan=False)
    assert report.test("wristband total").rejected and report.test("per-dim mean/std").rejected


def test_a_scale_beyond_the_tests_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="not N\\(0, I\\)") as error:
        latentshape.check(torch.from_numpy(_scaled(1e160)))
    assert "\n" not in str(error.value)


def test_cli_on_huge_files_succeeds_or_exits_2_with_one_line(huge_files, capsys) -> None:
    assert main(["check", str(huge_files["e10"]), "--json", *FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["is_gaussian"] is False
    assert main(["check", str(huge_files["e160"]), *FAST]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and "rescale" in captured.err


def test_report_json_turns_nan_and_inf_into_null() -> None:
    report = latentshape.check(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)), null_samples=20)
    report.tests[0].statistic = math.inf
    report.tests[0].p_holm = math.nan
    report.wristband["rad"] = math.inf
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["tests"][0]["statistic"] is None and payload["tests"][0]["p_holm"] is None
    assert payload["wristband"]["rad"] is None
    assert "inf" in str(report)


def _forbid(monkeypatch, target, name: str) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} ran although its output cannot be written")

    monkeypatch.setattr(target, name, refuse)


def test_bench_checks_its_output_folder_before_the_run(monkeypatch, capsys) -> None:
    from latentshape.bench import protocols

    _forbid(monkeypatch, protocols, "detection")
    assert main(["bench", "detection", "--tiny", "--out", "/proc/latentshape-no/such"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "cannot write" in err


def test_demo_checks_its_output_folder_before_training(monkeypatch, capsys) -> None:
    pytest.importorskip("sklearn")
    from latentshape import demo

    _forbid(monkeypatch, demo, "run_demo")
    assert main(["demo", "--epochs", "0", "--out", "/proc/latentshape-no/such"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot write" in err


def test_check_plot_path_is_checked_before_the_work(monkeypatch, huge_files, tmp_path, capsys) -> None:
    from latentshape import diagnostics

    _forbid(monkeypatch, diagnostics, "check")
    assert main(["check", str(huge_files["e10"]), "--plot", "/proc/latentshape-no/such.png"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["check", str(huge_files["e10"]), "--plot", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_plot_writes_exactly_the_path_it_prints(huge_files, tmp_path, capsys, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(huge_files["e10"]), "--plot", "adir", *FAST]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "wrote adir"
    assert (tmp_path / "adir").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "adir.png").exists()


def test_meta_tensors_are_a_clear_error_everywhere() -> None:
    meta = torch.randn(64, 8, device="meta")
    for call in (latentshape.WristbandLoss(), latentshape.SIGReg(), latentshape.GaussianMMD(), latentshape.check):
        with pytest.raises(ValueError, match="meta device"):
            call(meta)


def test_integer_numpy_arrays_and_integer_tensors_are_refused_alike() -> None:
    counts = np.random.default_rng(1).poisson(3.0, size=(80, 3)) - 3
    for integers in (counts, torch.from_numpy(counts)):
        with pytest.raises(TypeError, match="floating"):
            latentshape.check(integers)
    floats = latentshape.check(counts.astype(float), null_samples=20)
    assert floats.to_dict() == latentshape.check(torch.from_numpy(counts).double(), null_samples=20).to_dict()
