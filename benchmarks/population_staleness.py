"""Staleness of population mode: the stored estimate against the exact full-data statistic, by horizon.

The digits encoder (MLP 64-128-128-8, cross-entropy + w * loss, Adam 1e-3, batches of 128) is
trained with one loss (``--train batch``: the per-batch loss, so every horizon is measured on the
same trajectory; ``--train population``: ``PopulationMode(loss, window=--train-window)``, so the
trajectory is the one population mode itself drives). Once per ``--every`` steps, on the current
encoder and batch, for each window K:

- *stale*: the current batch pooled with the feature sums stored at the previous K - 1 steps (what
  ``PopulationMode(loss, window=K)`` sees);
- *fresh*: the same K batches' rows re-embedded by the current encoder (no staleness, same sampling);
- *exact*: the current batch pooled with every other training row at the current encoder (N = 1437).

Printed per K (medians over the probes): the value's relative staleness bias
(z_stale - z_fresh) / |z_fresh|, and the cosine of the encoder-parameter gradient with the exact
one for the stale, fresh and per-batch (K = 1) losses, and the stale gradient's norm over the
per-batch loss's on the same state. The gradient closest to the exact one is the best horizon:
fresh improves with K (less sampling noise), stale loses what the encoder moved.

    python benchmarks/population_staleness.py --loss sigreg --weight 0.003 [--train batch] [--epochs 30]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics

import torch
import torch.nn.functional as F

from latentshape import MomentMatchingLoss, PopulationMode, SIGReg, WristbandLoss
from latentshape.bench.digits import MLPEncoder, load_digits_split, minibatches

BUILD = {"moment_matching": MomentMatchingLoss, "sigreg": SIGReg, "wristband": WristbandLoss}


def _norm(a: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((x * x).sum()) for x in a))


def _cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    dot = sum(float((x * y).sum()) for x, y in zip(a, b))
    return dot / math.sqrt(sum(float((x * x).sum()) for x in a) * sum(float((y * y).sum()) for y in b))


class Probe:
    """Population modules whose stored batches are set by hand: the current batch pooled with given sums."""

    def __init__(self, loss_name: str, extra: torch.Tensor | None) -> None:
        self.loss_name, self.extra, self.modules = loss_name, extra, {}

    def value(self, z: torch.Tensor, past: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
        """The loss of ``z`` pooled with ``past`` (feature sums and counts, oldest first) as ``PopulationMode`` would."""
        k = len(past) + 1
        if k not in self.modules:
            self.modules[k] = PopulationMode(BUILD[self.loss_name](), window=k).train()
        m = self.modules[k]
        if self.extra is not None:
            m.feature_extra = self.extra
        step = 10 * k  # any step count past the warm-up: the slot of the step t - a is (t - a) mod (K - 1)
        m.feature_sums = torch.zeros(k - 1, past[0][0].shape[0], dtype=torch.float64)
        m.feature_counts = torch.zeros(k - 1, dtype=torch.float64)
        for age, (sums, count) in enumerate(reversed(past), start=1):
            m.feature_sums[(step - age) % (k - 1)], m.feature_counts[(step - age) % (k - 1)] = sums, count
        m.steps.fill_(step)
        return m(z)


def run(args) -> dict[int, dict[str, list[float]]]:
    torch.manual_seed(args.seed)
    data = load_digits_split()
    encoder, head = MLPEncoder(8), torch.nn.Linear(8, 10)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    generator = torch.Generator().manual_seed(args.seed)
    windows = [int(k) for k in args.windows.split(",")]
    longest = max(windows)
    batch_loss = BUILD[args.loss]()
    trainer = PopulationMode(BUILD[args.loss](), window=args.train_window) if args.train == "population" else batch_loss
    tracker = PopulationMode(BUILD[args.loss](), window=2)  # only for its feature map (and SIGReg's slices)
    features, extra, probe = tracker.features, None, None
    history: list[tuple[torch.Tensor, torch.Tensor]] = []  # (rows, feature sums at the step they were seen)
    momenta = [float(a) for a in args.momenta.split(",") if a]
    results = {k: {"bias": [], "stale": [], "fresh": [], "batch": [], "norm": []} for k in [*windows, *momenta]}
    emas: dict[float, PopulationMode] = {}  # real EMA modules fed every step: their state is the stale estimate
    params = list(encoder.parameters())
    step = 0
    for _ in range(args.epochs):
        for rows in minibatches(len(data.train_y), 128, generator):
            z = encoder(data.train_x[rows])
            if probe is None:
                tracker(z.detach())
                extra = tracker.feature_extra if tracker.feature_extra.numel() else None
                probe = Probe(args.loss, extra)
                for a in momenta:
                    emas[a] = PopulationMode(BUILD[args.loss](), momentum=a).train()
                    if extra is not None:
                        emas[a].feature_extra = extra
            if step % args.every == args.every - 1 and len(history) >= longest:
                g_exact, g_batch = _measure(encoder, data, rows, z, history, features, extra, probe, batch_loss, params,
                                            windows, results)
                for a, ema in emas.items():
                    g_ema = torch.autograd.grad(copy.deepcopy(ema)(z), params, retain_graph=True)
                    results[a]["stale"].append(_cosine(g_ema, g_exact))
                    results[a]["norm"].append(_norm(g_ema) / _norm(g_batch))
            task = F.cross_entropy(head(z), data.train_y[rows])
            loss = task + args.weight * trainer(z)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                history = (history + [(rows, features.sums(z.detach(), extra))])[-longest:]
                for ema in emas.values():
                    ema(z.detach())
            step += 1
    with torch.no_grad():
        accuracy = float((head(encoder(data.test_x)).argmax(dim=1) == data.test_y).double().mean())
    print(f"held-out accuracy after {args.epochs} epochs: {accuracy:.3f}")
    return results


def _measure(encoder, data, rows, z, history, features, extra, probe, batch_loss, params, windows, results) -> None:
    with torch.no_grad():
        now = encoder(data.train_x)
        others = torch.ones(len(data.train_y), dtype=torch.bool)
        others[rows] = False
        exact_sums = features.sums(now[others], extra)
    exact = probe.value(z, [(exact_sums, float(others.sum()))])
    g_exact = torch.autograd.grad(exact, params, retain_graph=True)
    g_batch = torch.autograd.grad(batch_loss(z), params, retain_graph=True)
    for k in windows:
        if k == 1:
            results[k]["batch"].append(_cosine(g_batch, g_exact))
            continue
        past = history[len(history) - (k - 1):]
        stale_past = [(s, float(len(r))) for r, s in past]
        with torch.no_grad():
            fresh_past = [(features.sums(now[r], extra), float(len(r))) for r, _ in past]
        stale, fresh = probe.value(z, stale_past), probe.value(z, fresh_past)
        g_stale = torch.autograd.grad(stale, params, retain_graph=True)
        g_fresh = torch.autograd.grad(fresh, params, retain_graph=True)
        results[k]["bias"].append(float((stale - fresh).detach() / fresh.detach().abs().clamp_min(1e-12)))
        results[k]["stale"].append(_cosine(g_stale, g_exact))
        results[k]["fresh"].append(_cosine(g_fresh, g_exact))
        results[k]["norm"].append(_norm(g_stale) / _norm(g_batch))
    return g_exact, g_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="sigreg", choices=sorted(BUILD))
    parser.add_argument("--weight", type=float, default=0.003)
    parser.add_argument("--train", default="batch", choices=("batch", "population"))
    parser.add_argument("--train-window", type=int, default=12)
    parser.add_argument("--windows", default="1,2,3,4,6,8,12")
    parser.add_argument("--momenta", default="", help="EMA momenta a to measure too (stale estimate only)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--early", type=int, default=10, help="report the first EARLY epochs separately")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = run(args)
    cut = -(-args.early * 12 // args.every)  # probes in the first --early epochs (12 steps an epoch)
    for label, part in ((f"epochs 1-{args.early}", slice(0, cut)), (f"epochs {args.early + 1}-{args.epochs}", slice(cut, None))):
        _table(args, {k: {key: v[part] for key, v in r.items()} for k, r in results.items()}, label)


def _table(args, results, label: str) -> None:
    last = list(results)[-1]
    if not results[last]["stale"]:
        return
    print(f"\n{args.loss}, w = {args.weight:g}, trained {args.train}, seed {args.seed}, {label}; "
          f"medians over {len(results[last]['stale'])} probes\n")
    print("| window K | N_eff | value bias (stale - fresh) / fresh | cos(stale, exact) | cos(fresh, exact) "
          "| gradient norm / per-batch |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k, r in results.items():
        if isinstance(k, float):
            print(f"| EMA a = {k:.3g} | {128 * (2 - k) / k:.0f} | | {statistics.median(r['stale']):+.2f} | | "
                  f"{statistics.median(r['norm']):.2f} |")
        elif k == 1:
            print(f"| 1 (per batch) | 128 | 0 | {statistics.median(r['batch']):+.2f} | {statistics.median(r['batch']):+.2f} | 1 |")
        else:
            print(f"| {k} | {128 * k} | {statistics.median(r['bias']):+.3f} | {statistics.median(r['stale']):+.2f} | "
                  f"{statistics.median(r['fresh']):+.2f} | {statistics.median(r['norm']):.2f} |")


if __name__ == "__main__":
    main()
