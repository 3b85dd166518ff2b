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
    from latentshape.cli import main  # in process: the entry point runs in the test above

    assert main(["bench", "gaussianize", "--tiny", "--out", str(tmp_path), "--distributions", "x",
                 "--regularizers", "moment_matching"]) == 0
    assert "| x |" in (tmp_path / "bench_gaussianize.md").read_text()


def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys) -> None:
    # in process: main returns the exit code (the entry point itself runs in the tests above)
    from latentshape.cli import main

    assert main(["bench", "detection", "--tiny", "--out", str(tmp_path), "--regularizers", "nope"]) == 2
    error = capsys.readouterr().err
    assert "unknown regularizer" in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert main(["bench", "speed", "--tiny", "--quick"]) == 2
    assert "one of --quick and --tiny" in capsys.readouterr().err
