"""Memory kept by one forward + backward of a regularizer at large N, in copies of x beyond its gradient.

    python benchmarks/large_n_memory.py [--n 1000000] [--d 128] [--name wristband] [--saved] [--live] [--mmap-threshold BYTES]
                                        [--device cpu|cuda]

Two fresh spawned processes, one thread each. The baseline builds everything the case builds (x
float32 with requires_grad, the module, its closed-form null) and allocates x.grad; the case runs
one forward + backward instead. Both report their peak RSS (``ru_maxrss``); the difference, in units
of ``x.nbytes``, is what the step keeps beyond the input and its gradient (target: <= 2 copies plus
O(N) vectors). ``--saved`` also lists the tensors autograd saves for backward that are at least
N floats large (``torch.autograd.graph.saved_tensors_hooks``), with the storage shared by x marked.

``--live`` counts live tensor bytes instead, from the allocation events of PyTorch's profiler
(``profile_memory``; blind to the C allocator's free lists): what one forward keeps for the
backward (alive when the forward returns) and the peak over forward + backward, both beyond x and
its gradient (which the step allocates at its end), with the allocations alive at the peak.

Peak RSS also counts freed memory the C allocator keeps: glibc serves blocks below its (dynamic,
up to 32 MiB) mmap threshold from a heap it rarely returns, so block-wise temporaries and N-long
vectors can leave freed, fragmented heap resident at the peak. ``--mmap-threshold 65536`` sets
``MALLOC_MMAP_THRESHOLD_`` for both processes, so that every allocation above 64 KiB is returned
when freed: the peak is then that of the live tensors.

``--device cuda`` measures in this process instead: x and the module on the GPU, the peak stats of
the CUDA allocator reset once they exist, then one forward + backward; what it keeps is the rise of
``torch.cuda.max_memory_allocated()`` over the bytes allocated before it, less x.grad (live tensors:
the caching allocator's free blocks are not counted, so ``--live`` and ``--mmap-threshold`` are for
the CPU). The time is that of a second, synchronized call.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from device_suite import add_device_option, clock, device_header, use_device, warm_up  # noqa: E402
from memory import make  # noqa: E402


def _setup(name: str, n: int, d: int, device: str = "cpu"):
    import torch

    if device == "cpu":
        torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(n, d, device=device, requires_grad=True)
    module = make(name).to(device)
    if getattr(module, "calibrate", False) and hasattr(module, "null_stats") and name.startswith("wristband"):
        module.null_stats(n, d)
    return x, module


def _child(name: str, n: int, d: int, run: bool, queue) -> None:
    import torch

    x, module = _setup(name, n, d)
    start = time.perf_counter()
    if run:
        module(x).backward()
    else:
        x.grad = torch.ones_like(x)  # the gradient's pages, touched
    seconds = time.perf_counter() - start
    queue.put((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, seconds))


def peak_rss(name: str, n: int, d: int, run: bool) -> tuple[int, float]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(name, n, d, run, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def cuda_peak(name: str, n: int, d: int) -> tuple[int, int, float]:
    """(bytes allocated before the step, peak allocated bytes during one forward + backward, seconds of a second call)."""
    import torch

    x, module = _setup(name, n, d, "cuda")
    warm_up(x.device)  # the cuBLAS workspace belongs to the baseline, not to the step
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    module(x).backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    x.grad = None
    start = clock(x.device)
    module(x).backward()
    return base, peak, clock(x.device) - start


def saved_tensors(name: str, n: int, d: int, device: str = "cpu") -> list[str]:
    """The tensors of >= N elements saved for backward by one forward pass, largest first."""
    import torch

    x, module = _setup(name, n, d, device)
    seen: dict[int, tuple] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen.setdefault(storage.data_ptr(), (tuple(tensor.shape), tensor.dtype, storage.nbytes()))
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        module(x)
    rows = []
    for pointer, (shape, dtype, size) in sorted(seen.items(), key=lambda item: -item[1][2]):
        if size >= 4 * n:
            mark = " (x itself)" if pointer == x.untyped_storage().data_ptr() else ""
            rows.append(f"{shape} {dtype}: {size / x.nbytes:.3f} x.nbytes{mark}")
    return rows


def live_tensors(name: str, n: int, d: int) -> list[str]:
    """Live tensor bytes (profiler allocation events) after the forward and at the peak of forward + backward."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    x, module = _setup(name, n, d)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, with_stack=True) as prof:
        loss = module(x)
        with torch.profiler.record_function("forward done"):  # a time stamp between the two passes
            pass
        loss.backward()
    events, marker = [], None
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if _name(node) == "forward done":
            marker = node.start_time_ns
        if node.typed[0] == torch._C._profiler._EventType.Allocation:
            events.append((node.start_time_ns, node.typed[1].ptr, node.typed[1].alloc_size, _caller(node)))
        stack.extend(node.children)
    live, total, peak, at_peak, after_forward = {}, 0, 0, {}, 0
    for time_ns, pointer, size, caller in sorted(events, key=lambda event: event[0]):
        if marker is not None and time_ns > marker and not after_forward:
            after_forward = total
        total += size
        if size > 0:
            live[pointer] = (size, caller)
        else:
            live.pop(pointer, None)
        if total > peak:
            peak, at_peak = total, dict(live)
    rows = [f"kept after the forward: {after_forward / x.nbytes:.3f} x.nbytes; peak over forward + backward: "
            f"{(peak - x.nbytes) / x.nbytes:.3f} x.nbytes beyond x.grad (x.grad itself allocated at the end)",
            "alive at the peak (>= 0.004 x.nbytes each):"]
    groups: dict[str, list[int]] = {}
    for size, caller in at_peak.values():
        key = caller if size >= 0.004 * x.nbytes else "smaller allocations"
        groups.setdefault(key, []).append(size)
    for key, sizes in sorted(groups.items(), key=lambda item: -sum(item[1])):
        rows.append(f"  {sum(sizes) / x.nbytes:.3f} x.nbytes in {len(sizes)}: {key}")
    return rows


def _caller(node) -> str:
    """The innermost library frame and the aten op above an allocation event."""
    frames, op = [], ""
    while node is not None:
        name = _name(node)
        if not op and name.startswith("aten::"):
            op = name
        if "latentshape" in name and ".py(" in name:
            frames.append(name.rsplit("/", 1)[-1])
        node = node.parent
    return (frames[0] if frames else "autograd engine") + (f" {op}" if op else "")


def _name(node) -> str:
    try:
        return node.name
    except UnicodeDecodeError:  # a few profiler events carry undecodable names
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--name", default="wristband")
    parser.add_argument("--saved", action="store_true")
    parser.add_argument("--live", action="store_true", help="live tensor bytes from the profiler's allocation events")
    parser.add_argument("--mmap-threshold", type=int, help="MALLOC_MMAP_THRESHOLD_ for the measured processes")
    add_device_option(parser)
    args = parser.parse_args()
    if args.device == "cuda" and (args.live or args.mmap_threshold is not None):
        parser.error("--live and --mmap-threshold measure the CPU allocator: use them with --device cpu")
    device = use_device(args.device, threads=None)  # the measured processes set their own threads
    print(device_header(device, threads=1 if device.type == "cpu" else None))
    if device.type == "cuda":
        _report_cuda(args)
        return
    if args.mmap_threshold is not None:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)  # read by glibc at the children's start
    nbytes = 4 * args.n * args.d
    base, _ = peak_rss(args.name, args.n, args.d, run=False)
    case, seconds = peak_rss(args.name, args.n, args.d, run=True)
    allocator = f"MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}" if args.mmap_threshold is not None else "default glibc malloc"
    print(f"{args.name} at ({args.n}, {args.d}) float32, forward + backward, 1 thread, {allocator}: {seconds:.2f} s")
    print(f"peak RSS {case / 2**20:.0f} MiB vs baseline (x, x.grad, module) {base / 2**20:.0f} MiB: "
          f"{(case - base) / 2**20:.0f} MiB kept beyond x and its gradient = {(case - base) / nbytes:.2f} x.nbytes")
    if args.live:
        print("\n".join(live_tensors(args.name, args.n, args.d)))
    if args.saved:
        print("saved for backward (>= N elements):")
        for row in saved_tensors(args.name, args.n, args.d):
            print("  " + row)


def _report_cuda(args) -> None:
    nbytes = 4 * args.n * args.d
    base, peak, seconds = cuda_peak(args.name, args.n, args.d)
    kept = peak - base - nbytes  # x.grad is allocated during the step
    print(f"{args.name} at ({args.n}, {args.d}) float32, forward + backward, cuda allocator (allocated bytes): "
          f"{seconds:.3f} s (second call)")
    print(f"peak allocated {peak / 2**20:.0f} MiB vs before the step (x, module) {base / 2**20:.0f} MiB + x.grad "
          f"{nbytes / 2**20:.0f} MiB: {kept / 2**20:.0f} MiB kept beyond x and its gradient = {kept / nbytes:.2f} x.nbytes")
    if args.saved:
        print("saved for backward (>= N elements):")
        for row in saved_tensors(args.name, args.n, args.d, "cuda"):
            print("  " + row)


if __name__ == "__main__":
    main()
