"""`latentshape check FILE`: every file type and every user error, in process and through a subprocess."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from latentshape.cli import load_embeddings, main

FAST = ["--null-samples", "30"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("embeddings")
    rng = np.random.default_rng(0)
    gaussian = rng.standard_normal((64, 3))
    paths = {
        "npy": root / "x.npy", "npz": root / "x.npz", "npz_many": root / "many.npz", "pt": root / "x.pt",
        "pt_dict": root / "dict.pt", "csv": root / "x.csv", "csv_plain": root / "plain.csv",
        "rank3": root / "rank3.npy", "nan": root / "nan.npy", "few": root / "few.npy", "rank1": root / "rank1.npy",
        "corrupt": root / "corrupt.npy", "corrupt_pt": root / "corrupt.pt", "strings": root / "strings.npy",
        "unsupported": root / "x.txt", "ragged": root / "ragged.csv",
    }
    np.save(paths["npy"], gaussian)
    np.savez(paths["npz"], embeddings=gaussian)
    np.savez(paths["npz_many"], a=gaussian, b=gaussian[:10])
    torch.save(torch.from_numpy(gaussian).float(), paths["pt"])
    torch.save({"z": torch.from_numpy(gaussian), "labels": torch.arange(64)}, paths["pt_dict"])
    np.savetxt(paths["csv"], gaussian, delimiter=",", header="a,b,c", comments="")
    np.savetxt(paths["csv_plain"], gaussian, delimiter=",")
    np.save(paths["rank3"], gaussian.reshape(4, 16, 3))
    with_nan = gaussian.copy()
    with_nan[5, 1] = np.nan
    np.save(paths["nan"], with_nan)
    np.save(paths["few"], gaussian[:5])
    np.save(paths["rank1"], gaussian[:, 0])
    paths["corrupt"].write_bytes(b"\x93NUMPY garbage")
    paths["corrupt_pt"].write_bytes(b"not a zip archive")
    np.save(paths["strings"], np.array([["a", "b"]] * 10))
    paths["unsupported"].write_text("1,2\n")
    paths["ragged"].write_text("1,2,3\n4,5\n")
    return paths


GOOD = [("npy", []), ("npz", []), ("npz_many", ["--key", "b"]), ("pt", []), ("pt_dict", ["--key", "z"]),
        ("csv", []), ("csv_plain", []), ("rank3", [])]
ERRORS = [
    ("missing", [], "no such file"),
    ("unsupported", [], "unsupported file type"),
    ("corrupt", [], "cannot read"),
    ("corrupt_pt", [], "cannot read"),
    ("strings", [], "expected real numbers"),
    ("rank1", [], "expected (N, d)"),
    ("nan", [], "NaN or Inf (first: row 5)"),
    ("few", [], "at least 8"),
    ("npz_many", [], "pick one with --key"),
    ("npz_many", ["--key", "nope"], "no key 'nope'"),
    ("pt_dict", [], "pick one with --key"),
    ("ragged", [], "cannot read"),
    ("npy", ["--key", "x"], "--key applies to"),
    ("npy", ["--null-samples", "5"], "--null-samples must be >= 20"),
]


def _path(files: dict[str, Path], name: str) -> str:
    return str(files[name]) if name in files else str(next(iter(files.values())).parent / "missing.npy")


@pytest.mark.parametrize("name, extra", GOOD)
def test_every_file_type_loads_in_process(files, name: str, extra: list[str], capsys) -> None:
    assert main(["check", _path(files, name), "--json", *extra, *FAST]) == 0
    payload = json.loads(capsys.readouterr().out)
    expected_rows = 10 if name == "npz_many" else 64
    assert payload["n"] == expected_rows and payload["d"] == 3 and len(payload["tests"]) == 8
    if name == "rank3":
        assert any("flattened" in note for note in payload["notes"])


@pytest.mark.parametrize("name, extra, message", ERRORS)
def test_every_user_error_is_one_line_and_status_2_in_process(files, name, extra, message, capsys) -> None:
    assert main(["check", _path(files, name), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentshape check: error:") and message in lines[0], lines


def test_loader_keeps_float64_and_converts_integers(files) -> None:
    array, _ = load_embeddings(files["npy"])
    assert array.dtype == np.float64 and array.shape == (64, 3)


def _run(*arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentshape.cli", *arguments], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_subprocess_round_trip_with_json_and_plot(files, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    figure = tmp_path / "check.png"
    result = _run("check", str(files["npy"]), "--json", "--plot", str(figure), *FAST)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["source"] == "x.npy" and payload["n"] == 64
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_subprocess_user_error_has_no_traceback(files) -> None:
    result = _run("check", _path(files, "missing"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr


def test_subprocess_example_prints_both_reports() -> None:
    result = _run("check", "--example", *FAST)
    assert result.returncode == 0, result.stderr
    assert "gaussian N(0, I)" in result.stdout and "uniform cube" in result.stdout
    assert "consistent with N(0, I)" in result.stdout and "NOT N(0, I)" in result.stdout


# Every case runs in process above; through a fresh interpreter run the ones whose loaders can
# print their own warnings (torch.load, numpy's text reader) once per process, which an earlier
# in-process test may already have consumed.
# One success and one failure per loader that warns (torch.load, numpy's text reader).
SUBPROCESS_CASES = [("pt_dict", ["--key", "z"], None), ("csv", [], None),
                    ("corrupt_pt", [], "cannot read"), ("ragged", [], "cannot read")]


def test_subprocess_loaders_and_errors(files) -> None:
    commands = SUBPROCESS_CASES
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: _run("check", _path(files, c[0]), "--json", *FAST, *c[1]), commands))
    for (name, extra, message), result in zip(commands, results):
        assert "Traceback" not in result.stderr, (name, result.stderr)
        if message is None:
            assert result.returncode == 0 and json.loads(result.stdout)["d"] == 3, (name, result.stderr)
        else:
            assert result.returncode == 2 and message in result.stderr, (name, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
