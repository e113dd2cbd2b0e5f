"""dgm-eval's memorization metrics: the data-copying test C_T and the feature likelihood score.

Both read three sets of feature rows: the training set of the model, a held-out test set of the
same distribution and the generated set, with the settings layer6ai-labs/dgm-eval uses; the
tests compare them on the same rows with `tests/_dgm_eval.py`, an independent plain
implementation of that protocol:

- `ct` (Meehan et al., AISTATS 2020): PCA to 64 dimensions and KMeans with 3 cells fitted on the
  training rows; in each cell, the Mann–Whitney U of the nearest-training-row distances of the
  generated rows against those of the test rows, Z-scored; the mean of the cell Z-scores
  weighted by the test share of each cell, over the cells holding more than 20 generated rows.
  Strongly negative: the generated rows sit closer to the training set than fresh data does
  (copying). ``ct_test`` splits the test set in two (first half as the training set),
  ``ct_modified`` swaps the training and the generated set. PCA's randomized solver and KMeans
  draw from one ``RandomState(seed)`` in that order, as dgm-eval draws from numpy's global
  state (unseeded there; seeded and recorded here).
- `fls` / `fls_overfit` (Jiralerspong et al., NeurIPS 2023): rows standardised with the mean and
  std of all four sets; a Gaussian KDE centred on the generated rows with one bandwidth per
  centre, fitted to the training rows by 100 Adam steps (lr 0.5, ×0.1 after 50, log-bandwidths
  clamped to [-100, 20]); ``fls = 100·exp(-2 (NLL_test(gen) - NLL_test(baseline)) / d)`` with
  the same fit on held-out training rows (the baseline); ``fls_overfit``: % of generated
  centres whose likelihood of training rows beats that of test rows, minus 50. dgm-eval runs it
  on CUDA in float32 only; here on any device, in float64, with the NLL and its gradient summed
  block by block (`_kde_loss_grad`), so the bandwidth fit needs no autograd graph of N×M terms.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from diffbench.errors import MetricInputError
from diffbench.metrics.dgm import BLOCK, DGM_SEED, nearest, rows64

if TYPE_CHECKING:
    import torch

CT_DIMS, CT_CELLS, CT_MIN_GENERATED = 64, 3, 20


def _u_statistic(q: np.ndarray, p: np.ndarray) -> float:
    """Mann–Whitney U of sample `q` against `p` (average ranks for ties), as scipy's U1."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([q, p]))
    return float(ranks[:len(q)].sum() - len(q) * (len(q) + 1) / 2.0)


def _zu(p: np.ndarray, q: np.ndarray, t: np.ndarray, device: str) -> float:
    """Z-scored U of the generated (q) vs test (p) distances to their nearest training row."""
    lq, _ = nearest(q, t, device=device)
    lp, _ = nearest(p, t, device=device)
    m, n = len(q), len(p)
    mean = n * m / 2 - 0.5  # continuity correction, as Meehan et al.
    return (_u_statistic(lq, lp) - mean) / math.sqrt(n * m * (n + m + 1) / 12)


def ct(train: object, test: object, gen: object, *, seed: int = DGM_SEED,
       device: str = "cpu") -> float:
    """C_T of the generated rows (NaN when no cell holds more than 20 generated rows)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    t, p, q = rows64(train, "train rows"), rows64(test, "test rows"), rows64(gen, "fake rows")
    if not t.shape[1] == p.shape[1] == q.shape[1]:
        raise MetricInputError(f"ct: train, test and generated rows have dims {t.shape[1]}, "
                               f"{p.shape[1]}, {q.shape[1]}; all must come from one layer")
    if len(t) < CT_CELLS:
        raise MetricInputError(f"ct needs at least {CT_CELLS} training rows, got {len(t)}")
    rng = np.random.RandomState(seed)
    if t.shape[1] > CT_DIMS:
        pca = PCA(n_components=CT_DIMS, random_state=rng).fit(t)
        t, p, q = pca.transform(t), pca.transform(p), pca.transform(q)
    km = KMeans(n_clusters=CT_CELLS, n_init=10, random_state=rng).fit(t)
    t_cell, p_cell, q_cell = km.predict(t), km.predict(p), km.predict(q)
    zs, test_share, used = np.zeros(CT_CELLS), np.zeros(CT_CELLS), np.zeros(CT_CELLS, bool)
    for c in range(CT_CELLS):
        pc, qc, tc = p[p_cell == c], q[q_cell == c], t[t_cell == c]
        if len(pc) == 0 or len(tc) == 0:
            raise MetricInputError(f"ct: cell {c} of {CT_CELLS} holds no test or no training "
                                   "rows; use larger train and test sets")
        test_share[c] = len(pc) / len(p)
        used[c] = len(qc) / len(q) > CT_MIN_GENERATED / len(q)
        zs[c] = _zu(pc, qc, tc, device) if len(qc) else 0.0
    if not used.any():
        return float("nan")
    return float(test_share[used] @ zs[used] / test_share[used].sum())


def ct_test(train: object, test: object, gen: object, *, seed: int = DGM_SEED,
            device: str = "cpu") -> float:
    """C_T with the test set split in two: its first half as the training set (mode collapse)."""
    first, second = np.array_split(rows64(test, "test rows"), 2)
    return ct(first, second, gen, seed=seed, device=device)


def ct_modified(train: object, test: object, gen: object, *, seed: int = DGM_SEED,
                device: str = "cpu") -> float:
    """C_T with the training and generated sets swapped (memorization only)."""
    return ct(gen, test, train, seed=seed, device=device)


# ------------------------------------------------------------------ feature likelihood score

def fls_draw(train: object, test: object, gen: object, *, reduced_n: int = 10000,
             seed: int = DGM_SEED) -> tuple[np.ndarray, ...]:
    """dgm-eval's FLS inputs: (train, baseline, test, gen), n rows each, drawn from one
    ``RandomState(seed)`` (test, generated, then 2n training rows split in two), with
    n = min(reduced_n, len(train) // 2, len(test), len(gen))."""
    t, p, q = rows64(train, "train rows"), rows64(test, "test rows"), rows64(gen, "fake rows")
    n = min(reduced_n, len(t) // 2, len(p), len(q))
    if n < 2:
        raise MetricInputError(f"fls needs at least 4 training rows and 2 test and generated rows "
                               f"(got {len(t)}, {len(p)}, {len(q)})")
    rng = np.random.RandomState(seed)
    p = p[rng.choice(len(p), n, replace=False)]
    q = q[rng.choice(len(q), n, replace=False)]
    t = t[rng.choice(len(t), 2 * n, replace=False)]
    return t[:n], t[n:], p, q


def _standardise(sets: tuple[np.ndarray, ...], device: str) -> list[torch.Tensor]:
    import torch

    every = np.concatenate(sets)
    mean, std = every.mean(0), every.std(0, ddof=1)
    return [torch.as_tensor((s - mean) / std, device=device) for s in sets]


def _sq_blocks(x: torch.Tensor, y: torch.Tensor, block: int):
    yy = (y * y).sum(1)
    for i in range(0, len(x), block):
        xb = x[i:i + block]
        d = xb @ y.T
        yield d.mul_(-2).add_((xb * xb).sum(1)[:, None]).add_(yy[None, :]).clamp_min_(0)


def _log_terms(d2: torch.Tensor, log_sigmas: torch.Tensor, dim: int) -> torch.Tensor:
    """log of each centre's kernel at each row: -d²/(2σ²) - (dim/2) log σ² - log M."""
    import torch

    return (-0.5 * d2) * torch.exp(-log_sigmas) - (dim / 2) * log_sigmas - math.log(d2.shape[1])


def _kde_loss_grad(blocks, log_sigmas: torch.Tensor, dim: int,
                   n: int) -> tuple[float, torch.Tensor]:
    """Mean negative log-likelihood of the rows and its gradient in the log-bandwidths."""
    import torch

    loss, grad = 0.0, torch.zeros_like(log_sigmas)
    inv = torch.exp(-log_sigmas)
    for d2 in blocks:
        a = _log_terms(d2, log_sigmas, dim)
        lse = torch.logsumexp(a, dim=1)
        loss -= float(lse.sum())
        w = torch.exp(a - lse[:, None])  # each row's softmax over the centres
        grad -= (w * (0.5 * d2 * inv - dim / 2)).sum(0)
    return loss / n, grad / n


def fit_log_bandwidths(data: torch.Tensor, centres: torch.Tensor, *, steps: int = 100,
                       block: int = BLOCK, cache: bool = True) -> torch.Tensor:
    """FLS's bandwidth fit: Adam on the log-bandwidths of a KDE on `centres` for `data`.

    ``cache`` keeps the squared distances (N×M float64) between steps; without it they are
    recomputed block by block at every step (memory flat in N×M, ~steps times the work).
    """
    import torch

    log_sigmas = torch.zeros(len(centres), dtype=data.dtype, device=data.device,
                             requires_grad=True)
    optim = torch.optim.Adam([log_sigmas], lr=0.5)
    sched = torch.optim.lr_scheduler.MultiStepLR(optim, milestones=[50], gamma=0.1)
    kept = list(_sq_blocks(data, centres, block)) if cache else None
    for _ in range(steps):
        blocks = kept if kept is not None else _sq_blocks(data, centres, block)
        with torch.no_grad():
            _, grad = _kde_loss_grad(blocks, log_sigmas, data.shape[1], len(data))
        optim.zero_grad()
        log_sigmas.grad = grad
        optim.step()
        sched.step()
        with torch.no_grad():
            log_sigmas.clamp_(-100, 20)
    return log_sigmas.detach()


def _nll(data: torch.Tensor, centres: torch.Tensor, log_sigmas: torch.Tensor,
         block: int) -> float:
    import torch

    with torch.no_grad():
        loss, _ = _kde_loss_grad(_sq_blocks(data, centres, block), log_sigmas, centres.shape[1],
                                 len(data))
    return loss


def _column_lse(data: torch.Tensor, centres: torch.Tensor, log_sigmas: torch.Tensor,
                block: int) -> torch.Tensor:
    """log Σ over the rows of each centre's kernel term (logsumexp along the data axis)."""
    import torch

    out = None
    for d2 in _sq_blocks(data, centres, block):
        part = torch.logsumexp(_log_terms(d2, log_sigmas, centres.shape[1]), dim=0)
        out = part if out is None else torch.logaddexp(out, part)
    return out


def fls(train: object, test: object, gen: object, *, reduced_n: int = 10000,
        seed: int = DGM_SEED, device: str = "cpu", block: int = BLOCK) -> dict[str, float]:
    """FLS and FLS overfit of the generated rows against training and held-out test rows."""
    import torch

    t, base, p, q = _standardise(fls_draw(train, test, gen, reduced_n=reduced_n, seed=seed),
                                 device)
    with torch.enable_grad():
        gen_sig = fit_log_bandwidths(t, q, block=block)
        base_sig = fit_log_bandwidths(t, base, block=block)
    gen_nll, base_nll = _nll(p, q, gen_sig, block), _nll(p, base, base_sig, block)
    score = 100.0 * math.e ** (-2 * (gen_nll - base_nll) / t.shape[1])
    size = min(len(p), len(t))
    with torch.no_grad():
        diff = _column_lse(t[:size], q, gen_sig, block) - _column_lse(p[:size], q, gen_sig, block)
    overfit = (int((diff > 0).sum()) / len(diff)) * 100 - 50  # dgm-eval's rounding order
    return {"fls": float(score), "fls_overfit": float(overfit), "rows": len(q)}
