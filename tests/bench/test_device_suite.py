"""The device suite's command line: it parses, names scripts that exist, and without CUDA exits 2 in one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _suite():
    spec = importlib.util.spec_from_file_location("device_suite", BENCHMARKS / "device_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_parses_and_lists_the_options():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "device_suite.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--device", "--out", "--budget-s", "--quick"):
        assert option in result.stdout


def test_every_entry_names_an_existing_script_with_positive_share():
    suite = _suite()
    assert len({entry[0] for entry in suite.SUITE}) == len(suite.SUITE)
    for name, script, full, quick, share in suite.SUITE:
        assert (BENCHMARKS / script).is_file(), script
        assert "--device" not in full + quick  # the suite adds it
        assert share > 0


def test_cuda_missing_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        _suite().use_device("cuda")
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("CUDA is not available") and err.count("\n") == 1


def test_cpu_is_one_thread_and_named_in_the_header():
    suite = _suite()
    previous = torch.get_num_threads()
    try:
        device = suite.use_device("cpu")
        assert device.type == "cpu" and torch.get_num_threads() == 1
        assert suite.device_header(device).startswith("device: cpu (1 thread,")
    finally:
        torch.set_num_threads(previous)
