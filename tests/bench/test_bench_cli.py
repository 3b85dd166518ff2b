"""``latentshape bench``: the command runs end to end and writes its report; mistakes exit 2."""

from __future__ import annotations

import subprocess
import sys


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "latentshape.cli", "bench", *args], capture_output=True, text=True,
                          timeout=120)


def test_tiny_detection_writes_markdown_and_plot(tmp_path) -> None:
    result = _bench("detection", "--tiny", "--out", str(tmp_path), "--distributions", "gaussian", "x",
                    "--regularizers", "wristband", "mmd")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "bench_detection.md").read_text()
    assert "| x |" in text and "wristband" in text and "bench detection --tiny" in text
    assert (tmp_path / "bench_detection.png").exists()
    assert "| source | wristband | mmd |" in result.stdout


def test_tiny_gaussianize_writes_markdown(tmp_path) -> None:
    result = _bench("gaussianize", "--tiny", "--out", str(tmp_path), "--distributions", "x",
                    "--regularizers", "moment_matching")
    assert result.returncode == 0, result.stderr
    assert "| x |" in (tmp_path / "bench_gaussianize.md").read_text()


def test_user_mistakes_exit_2_with_one_line(tmp_path) -> None:
    result = _bench("detection", "--tiny", "--out", str(tmp_path), "--regularizers", "nope")
    assert result.returncode == 2 and "unknown regularizer" in result.stderr and "Traceback" not in result.stderr
    result = _bench("speed", "--tiny", "--quick")
    assert result.returncode == 2 and "one of --quick and --tiny" in result.stderr
