r"""Null calibration: turn a raw statistic into a z-score against its law under x ~ N(0, I).

A calibrated loss reports :math:`z = (c - m) / s`, where m and s are the mean and standard
deviation of the statistic c over batches drawn from N(0, I) at the batch's own (N, d). Several
components are combined as :math:`(\sum_c w_c z_c) / s_{total}`, with
:math:`s_{total}^2 = w^\top R w` and R the null correlation matrix of the z's, so that the total
is itself ~ mean 0, sd 1 under the null (docs/theory.md, "Calibration: the closed-form null").

This module is the one place where that happens:

- :class:`NullStats` holds a null law's mean, sd and correlation, and forms the calibrated total
  (:meth:`NullStats.total`);
- :func:`monte_carlo_null` is the one Monte-Carlo routine (a fixed seed, vectorized over draws),
  used by every statistic without a closed form and by :func:`latentshape.check`;
- :func:`cached_null_stats` is the one cache, in memory per (statistic configuration, N, d) and,
  with :func:`set_disk_cache`, on disk across processes.

Every batch statistic asks for its null through
:meth:`latentshape.statistic.BatchStatistic.null_stats`, which tries the statistic's closed form
first and falls back to :func:`monte_carlo_null`.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .compiler_hints import run_eagerly

__all__ = [
    "NullStats",
    "calibrated_total",
    "monte_carlo_null",
    "cached_null_stats",
    "clear_null_cache",
    "set_disk_cache",
    "check_flag",
    "check_null_samples",
    "SATURATION",
]


@dataclass(frozen=True)
class NullStats:
    """Null mean, standard deviation and correlation of C statistic components (float64, CPU).

    ``samples`` is the number of Monte-Carlo batches behind the estimate (0 for a closed form);
    ``draws``, when kept, holds those batches' raw values ``(R, C)``.

    >>> stats = NullStats.from_samples(torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 2.0]]))
    >>> stats.mean.tolist(), stats.std.tolist()
    ([2.0, 2.0], [2.0, 1.0])
    >>> stats.standardize(torch.tensor([4.0, 2.0])).tolist()
    [1.0, 0.0]
    >>> total, z = stats.total(torch.tensor([4.0, 2.0]), torch.tensor([1.0, 0.0]))
    >>> float(total)
    1.0
    """

    mean: Tensor
    std: Tensor
    corr: Tensor
    samples: int
    draws: Tensor | None = None

    @classmethod
    def from_samples(cls, values: Tensor, keep_draws: bool = False) -> "NullStats":
        """Estimate from null draws of shape ``(R, C)``; ``keep_draws`` stores them in ``draws``."""
        values = values.detach().to("cpu", torch.float64)
        if values.dim() != 2 or values.shape[0] < 2:
            raise ValueError(f"need null samples of shape (R >= 2, C), got {tuple(values.shape)}")
        mean = values.mean(dim=0)
        std = values.std(dim=0, unbiased=True)
        # A component that is constant under the null (e.g. a switched-off term) gets sd 1 so
        # that its z-score is just the centred value instead of a division by zero.
        std = torch.where(std > 0, std, torch.ones_like(std))
        z = (values - mean) / std
        corr = (z.T @ z) / (values.shape[0] - 1)
        return cls(mean=mean, std=std, corr=corr, samples=int(values.shape[0]),
                   draws=values if keep_draws else None)

    @classmethod
    def from_moments(cls, mean: float, variance: float) -> "NullStats":
        """A one-component closed form: exact null mean and variance (no Monte-Carlo, ``samples = 0``)."""
        std = math.sqrt(variance) if variance > 0 else 1.0
        return cls(mean=torch.tensor([float(mean)], dtype=torch.float64), std=torch.tensor([std], dtype=torch.float64),
                   corr=torch.ones(1, 1, dtype=torch.float64), samples=0)

    @classmethod
    def from_covariances(cls, order: tuple[str, ...], mean: dict, sd: dict, slope: dict, covariances: dict) -> "NullStats":
        r"""A closed form from per-component null means and sds and the raw covariances of the quantities behind them.

        ``covariances[(p, q)]`` is the null covariance of the raw quantities behind components p and q;
        ``slope[p]`` the first-order (delta-method) slope from that quantity to component p, so
        :math:`\rho_{pq} = \mathrm{Cov}_{pq}\,s_p s_q / (\sigma_p \sigma_q)`, clipped to [-1, 1]. A component
        missing from ``mean`` / ``sd`` or with sd 0 (constant under the null, or switched off) gets mean 0
        if missing, sd 1 and no correlation, as in :meth:`from_samples`.

        >>> stats = NullStats.from_covariances(("a", "b"), {"a": 1.0, "b": 0.0}, {"a": 2.0, "b": 1.0},
        ...                                    {"a": 1.0, "b": 1.0}, {("a", "b"): 1.0})
        >>> stats.corr[0, 1].item(), stats.std.tolist()
        (0.5, [2.0, 1.0])
        """
        corr = [[float(i == j) for j in range(len(order))] for i in range(len(order))]  # one tensor at the end
        for (p, q), value in covariances.items():
            if sd.get(p, 0.0) > 0 and sd.get(q, 0.0) > 0:
                i, j = order.index(p), order.index(q)
                corr[i][j] = corr[j][i] = max(-1.0, min(1.0, float(value * slope[p] * slope[q] / (sd[p] * sd[q]))))
        corr = torch.tensor(corr, dtype=torch.float64)
        return cls(mean=torch.tensor([float(mean.get(k, 0.0)) for k in order], dtype=torch.float64),
                   std=torch.tensor([float(sd.get(k, 0.0)) or 1.0 for k in order], dtype=torch.float64),
                   corr=corr, samples=0)

    def standardize(self, values: Tensor) -> Tensor:
        """z-scores of raw values ``(..., C)``, in ``values``' dtype and device."""
        mean = self.mean.to(values.device, values.dtype)
        std = self.std.to(values.device, values.dtype)
        return (values - mean) / std

    def combined_std(self, weights: Tensor) -> float:
        """Null sd of the weighted sum of the components' z-scores, :math:`\\sqrt{w^T R w}`."""
        w = torch.as_tensor(weights, dtype=torch.float64).cpu()
        variance = float(w @ self.corr @ w)
        return math.sqrt(variance) if variance > 0 else 1.0

    def total(self, values: Tensor, weights: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        r"""The calibrated total and the components' z-scores of raw values ``(..., C)``.

        :math:`\mathrm{total} = (\sum_c w_c z_c) / \sqrt{w^\top R w}`: mean ~0 and sd ~1 under the
        null. Returns ``(total (...), z (..., C))`` in ``dtype`` (default: ``values``' dtype).

        Both are formed in float64 (where the device has it) and *saturate* at
        ``SATURATION`` times the largest finite value of ``dtype`` (~5e33 in float32): a raw value
        that fits its dtype can still have a z-score beyond it (the null sd is small), and a silent
        inf would turn every gradient into NaN. Beyond the cap the value is +-cap and the gradient
        is the total's own, scaled by cap / ``abs(total)``: the same descent direction, so training can
        pull an exploding encoder back. The headroom under the dtype's largest value keeps a mean
        over leading dims or a weighted sum with other losses finite.

        >>> stats = NullStats.from_moments(0.0, 1e-6)
        >>> float(stats.total(torch.tensor([1e36]), torch.tensor([1.0]))[0]) == SATURATION * torch.finfo(torch.float32).max
        True
        """
        return calibrated_total(values, weights, self.mean, self.std, self.corr, dtype)


def calibrated_total(values: Tensor, weights: Tensor, mean: Tensor, std: Tensor, corr: Tensor,
                     dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """:meth:`NullStats.total` from the null law's tensors: pure tensor arithmetic, so that under
    ``torch.compile`` the null law enters the graph as data (never as constants to guard on)."""
    dtype = values.dtype if dtype is None else dtype
    wide = torch.float32 if values.device.type == "mps" else torch.float64  # MPS has no float64
    # Exact power-of-two rescaling: the float64 sums below stay finite for any finite raw value.
    shrink = _SHRINK if wide == torch.float64 else 1.0
    mean, std = mean.to(values.device, wide), std.to(values.device, wide)
    z = (values.to(wide) * shrink - mean * shrink) / std
    w = torch.as_tensor(weights, dtype=torch.float64)
    variance = w @ corr @ w  # tensor arithmetic throughout: traceable by torch.compile
    scale = torch.where(variance > 0, variance, torch.ones_like(variance)).sqrt().to(values.device, wide)
    total = (z * w.to(values.device, wide)).sum(dim=-1) / scale
    return _saturate(total, shrink, dtype), _saturate(z, shrink, dtype)


# The calibrated total's cap as a fraction of its dtype's largest value (see NullStats.total).
SATURATION = 2.0 ** -16
_SHRINK = 2.0 ** -64


def _saturate(shrunk: Tensor, shrink: float, dtype: torch.dtype) -> Tensor:
    """``shrunk / shrink`` in ``dtype``, saturated at ``SATURATION * finfo(dtype).max`` keeping the gradient's direction."""
    limit = SATURATION * torch.finfo(dtype).max * shrink
    magnitude = shrunk.detach().abs()
    factor = torch.where(magnitude > limit, limit / magnitude, torch.ones_like(magnitude))
    capped = torch.where(torch.isinf(shrunk), torch.sign(shrunk.detach()) * limit, shrunk * factor)
    return (capped / shrink).to(dtype)


def monte_carlo_null(
    statistic: Callable[[Tensor], Tensor],
    n: int,
    d: int,
    *,
    samples: int = 512,
    seed: int = 0,
    device: torch.device | str = "cpu",
    max_elements: int = 1 << 24,
    description: str = "calibrating",
    dtype: torch.dtype = torch.float64,
    keep_draws: bool = False,
) -> NullStats:
    """Null moments of ``statistic`` at (N, d) from ``samples`` batches drawn from N(0, I).

    ``statistic`` maps a tensor ``(R, N, d)`` of ``dtype`` (float64 by default; float32 halves the
    cost where Monte-Carlo error dominates rounding) to raw values ``(R, C)`` (or ``(R,)``).
    Draws are made in chunks of at most ``max_elements`` numbers from a generator seeded with
    ``seed``: the same arguments give the same batches, whatever the statistic. A progress bar
    appears if calibration runs longer than two seconds. ``keep_draws`` keeps the raw values in
    ``NullStats.draws`` (for empirical p-values).

    >>> stats = monte_carlo_null(lambda x: x.mean(dim=(-2, -1)), n=10, d=3, samples=4000)
    >>> abs(float(stats.mean)) < 0.01, abs(float(stats.std) * 30 ** 0.5 - 1) < 0.05
    (True, True)
    """
    samples = check_null_samples(samples, minimum=2)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    per_chunk = max(1, min(samples, max_elements // max(1, n * d)))
    outputs: list[Tensor] = []
    with tqdm(total=samples, desc=f"{description} (N={n}, d={d})", delay=2.0, leave=False) as bar:
        done = 0
        while done < samples:
            r = min(per_chunk, samples - done)
            # Drawn in float64 and rounded: float32 randn returns exact zeros (~7e-8 per number, seen
            # 23 in 3.4e8), and at d = 1 a zero row is a wild radial outlier that inflates the null sd.
            x = torch.randn(r, n, d, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
            with torch.no_grad():
                value = statistic(x)
            outputs.append(value.reshape(r, -1).to("cpu", torch.float64))
            done += r
            bar.update(r)
    return NullStats.from_samples(torch.cat(outputs, dim=0), keep_draws=keep_draws)


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is exactly True or False, else a ``ValueError`` naming the option."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_null_samples(value: object, minimum: int = 16) -> int:
    """The number of Monte-Carlo null batches as an int >= ``minimum``, else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ValueError(f"null_samples must be an integer >= {minimum}, got {value!r}")
    return int(value)


_CACHE: dict[Hashable, NullStats] = {}
_LOCK = threading.Lock()
_DISK_CACHE: Path | None = Path(os.environ["LATENTSHAPE_CACHE_DIR"]) if os.environ.get("LATENTSHAPE_CACHE_DIR") else None


def set_disk_cache(directory: str | Path | None | bool = True) -> Path | None:
    """Also keep Monte-Carlo calibrations on disk, so that later processes skip them for known shapes.

    ``True`` uses ``$XDG_CACHE_HOME/latentshape`` (``~/.cache/latentshape``); a path uses that
    directory; ``None``/``False`` turns the disk cache off (the default, unless the environment
    variable ``LATENTSHAPE_CACHE_DIR`` names a directory). Returns the directory in use.
    """
    global _DISK_CACHE
    if directory is True:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = Path(base) / "latentshape"
    _DISK_CACHE = Path(directory) if directory else None
    return _DISK_CACHE


def _disk_path(key: Hashable) -> Path | None:
    if _DISK_CACHE is None:
        return None
    from . import __version__

    digest = hashlib.sha256(repr((__version__, key)).encode()).hexdigest()[:24]
    return _DISK_CACHE / f"null-{digest}.pt"


def _load(path: Path | None) -> NullStats | None:
    if path is None or not path.exists():
        return None
    try:
        fields = torch.load(path, weights_only=True)
        return NullStats(mean=fields["mean"], std=fields["std"], corr=fields["corr"],
                         samples=int(fields["samples"]), draws=fields.get("draws"))
    except Exception:  # a corrupt or foreign file is recomputed, never trusted
        return None


def _store(path: Path | None, stats: NullStats) -> None:
    if path is None or stats.samples == 0:  # closed forms cost milliseconds: not worth a file
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        fields = {"mean": stats.mean, "std": stats.std, "corr": stats.corr, "samples": stats.samples}
        if stats.draws is not None:
            fields["draws"] = stats.draws
        torch.save(fields, partial)
        os.replace(partial, path)  # atomic: concurrent processes never read half a file
    except OSError:
        pass  # the cache is an optimization; an unwritable directory must not break training


@run_eagerly  # plain Python lookups: run eagerly, never traced or guarded on
def cached_null_stats(key: Hashable, compute: Callable[[], NullStats]) -> NullStats:
    """Return the cached :class:`NullStats` for ``key``, computing it once with ``compute()``.

    Looks in memory, then (if enabled with :func:`set_disk_cache`) on disk.
    """
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    path = _disk_path(key)
    stats = _load(path)
    if stats is None:
        stats = compute()
        _store(path, stats)
    with _LOCK:
        return _CACHE.setdefault(key, stats)


def clear_null_cache() -> None:
    """Forget every null law cached in memory (the disk cache, if any, is left alone)."""
    with _LOCK:
        _CACHE.clear()
