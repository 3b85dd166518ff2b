"""Run every ```python block of docs/shapers.md, so the documented examples cannot rot."""

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "shapers.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOCUMENT.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_every_shaper_has_an_example():
    text = "\n".join(BLOCKS)
    for name in ("UniformityLoss", "AlignmentLoss", "fit_prototypes", "PrototypeClassificationLoss",
                 "PrototypeRegressionLoss", "SoftNearestNeighborLoss", "annealed_temperature",
                 "LayerwiseSoftNearestNeighborLoss", "KDECrossEntropy"):
        assert name in text, f"docs/shapers.md has no example using {name}"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs(block):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors; see tests/sphere/conftest.py
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            exec(compile(block, str(DOCUMENT), "exec"), {"__name__": "__docs__"})
    finally:
        torch.set_num_threads(previous)
    assert output.getvalue().strip(), "each example prints its result"
