"""`latentshape demo` end to end, and its user errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("zuko")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from latentshape.cli import main
from latentshape.demo import gaussianity_table

FIGURES = ("samples.png", "reconstructions.png", "latent.png", "completions.png")


def _cli(*args: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "latentshape.cli", "demo", *args], capture_output=True, text=True,
                          env=environment, timeout=600)


def test_cli_runs_end_to_end_with_one_epoch(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = _cli("--epochs", "1", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    for name in FIGURES:
        path = out / name
        assert path.exists() and path.stat().st_size > 5000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = result.stdout.splitlines()
    assert any(line.split()[:6] == ["digits", "N", "total", "rep", "rad", "mom"] for line in lines)
    rows = [line.split() for line in lines if line.startswith(("before", "after"))]
    assert [row[:2] for row in rows] == [["before", "train"], ["before", "held-out"], ["after", "train"], ["after", "held-out"]]
    assert [row[2] for row in rows] == ["1597", "200", "1597", "200"]


# User mistakes in process (main returns the exit code); the entry point itself is covered above.
def test_cli_rejects_a_bad_latent_dimension(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--latent-dim", "1", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.strip().count("\n") == 0 and "--latent-dim must be >= 2" in error and "Traceback" not in error


def test_cli_rejects_an_output_path_that_is_a_file(tmp_path: Path, capsys) -> None:
    occupied = tmp_path / "taken"
    occupied.write_text("x")
    assert main(["demo", "--epochs", "0", "--out", str(occupied)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_gaussianity_table_layout() -> None:
    values = {"total": 1.0, "rep": 2.0, "rad": 3.0, "mom": 4.0, "sharp": 5.0, "coord": 6.0, "mse": 0.01, "n": 10.0}
    table = gaussianity_table({"train": values}, {"train": values}, latent_dim=8)
    lines = table.splitlines()
    assert "K = 8" in lines[0]
    assert lines[3].split() == ["before", "train", "10", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "0.0100"]
    assert lines[4].split()[0] == "after"
