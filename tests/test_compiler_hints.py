"""The compile hints behave as torch.compiler's own decorators and keep Dynamo out of the import."""

from __future__ import annotations

import subprocess
import sys

import torch

from latentshape.compiler_hints import constant_result, run_eagerly


def test_an_eager_process_never_loads_dynamo():
    # import, a calibrated loss with its backward, population mode and check(): all without torch._dynamo
    code = ("import sys, torch, latentshape, latentshape.cli\n"
            "x = torch.randn(128, 4, requires_grad=True)\n"
            "latentshape.WristbandLoss()(x).backward()\n"
            "latentshape.PopulationMode(latentshape.SIGReg())(x)\n"
            "latentshape.check(x.detach(), null_samples=32)\n"
            "print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_constant_result_sets_what_assume_constant_result_sets():
    def ours():
        return 1.0

    def theirs():
        return 1.0

    before = set(vars(theirs))
    torch.compiler.assume_constant_result(theirs)
    marks = {name: getattr(theirs, name) for name in set(vars(theirs)) - before}
    constant_result(ours)
    assert marks and all(getattr(ours, name, None) == value for name, value in marks.items())


def test_constant_result_is_a_graph_constant_and_run_eagerly_runs_in_python():
    calls = []

    @constant_result
    def scale(d: int) -> float:
        calls.append(d)
        return float(d) / 2.0

    seen = []

    @run_eagerly
    def record(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.compiler.is_compiling())  # False: Dynamo does not trace it
        return x + 1.0

    compiled = torch.compile(lambda x: record(x * scale(x.shape[-1])), backend="eager")
    torch._dynamo.reset()
    x = torch.ones(3, 4)
    assert torch.equal(compiled(x), x * 2.0 + 1.0)
    traced = len(calls)
    assert traced >= 1 and seen == [False]  # scale ran while tracing (again if Dynamo restarts at the break)
    assert torch.equal(compiled(x), x * 2.0 + 1.0)
    assert len(calls) == traced and seen == [False, False]  # a constant of the graph; record runs every call
