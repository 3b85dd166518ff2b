"""Shared pytest fixtures; puts this directory on sys.path for the shared ``checkers`` package."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def single_thread():
    # Most tests use small tensors: on a busy 2-core machine, waking an OpenMP pool costs
    # milliseconds per op (a 120 x 120 exp went from 4 us to 6 ms), far more than it saves.
    # One thread for every test also makes results independent of the machine's core count.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
