"""Test oracle for dgm-eval's metrics: a plain, independent implementation of its protocol.

This module is written from the metrics' published definitions, not from dgm-eval's source.
What it shares with dgm-eval is the protocol, i.e. the facts that decide the numbers (estimator,
kernel, subset sizes and counts, the order of the random draws and the generator they come from,
PCA/KMeans settings, the FLS optimiser settings, k of the nearest-neighbour radii). Those facts
were taken from the papers and checked against the behaviour of layer6ai-labs/dgm-eval at commit
d57a6d2d6bd613332dd21696994afff8efa78575 (the protocol's source; no code from it is used here).

Papers: Stein et al., "Exposing flaws of generative model evaluation metrics", NeurIPS 2023
(FD_eff, FD∞ after Chong & Forsyth, CVPR 2020; KD after Bińkowski et al., ICLR 2018; AuthPct
after Alaa et al., ICML 2022); Friedman & Dieng, "The Vendi Score", TMLR 2023; Nadjahi et al.,
NeurIPS 2021 (approximate sliced W2); Kynkäänniemi et al., NeurIPS 2019 (realism score);
Meehan et al., AISTATS 2020 (data-copying test C_T); Jiralerspong et al., NeurIPS 2023 (FLS).

Everything is float64 and written as the formula reads: full pairwise distance matrices from
``scipy.spatial.distance.cdist`` (differences, not the |x|²+|y|²-2x·y shortcut), explicit sums,
small loops. It is slow and memory-hungry on purpose; diffbench's blocked code
(``diffbench/metrics/{dgm,memorization,knn}.py``) is checked against it, and it imports nothing
from diffbench.

Functions (names kept from the tests' and the benchmark's call sites):

- ``compute_statistics(x)``: mean and unbiased covariance (divisor n-1) of the rows.
- ``compute_fd_with_stats(mu1, mu2, s1, s2)``: Fréchet distance with Tr√(S1S2) from the matrix
  square root (``scipy.linalg.sqrtm``; retried with 1e-6·I added to both if not finite).
- ``compute_efficient_fd_with_reps(x, y)``: FD_eff, Tr√(S1S2) as Σ Re √λ over the eigenvalues λ
  of the product S1·S2.
- ``compute_fd_infinity(x, y, seed)``: FD of x against 15 subsets of y of sizes
  linspace(min(5000, max(n//10, 2)), n, 15) (int32), each drawn without replacement by
  ``np.random.default_rng(seed).choice`` in increasing size; the least-squares line of FD_N
  against 1/N evaluated at 1/N = 0.
- ``compute_mmd(x, y, n_subsets, subset_size)``: KD, the unbiased MMD² with the kernel
  k(a, b) = (a·b/d + 1)³ on each of ``n_subsets`` pairs of subsets of min(subset_size, n_x, n_y)
  rows, drawn without replacement by numpy's global ``np.random.choice`` (x's indices first);
  returns the per-subset values.
- ``compute_vendi_score(x)``: exp of the Shannon entropy of the eigenvalues of K/n, K the linear
  kernel of the L2-normalised rows (q = 1); ``compute_per_class_vendi_scores`` per label 0..C-1.
- ``compute_authpct(x, y)``: % of rows of y whose nearest row r of x has a nearest x-neighbour
  (other than r) strictly closer than the row of y is.
- ``sw_approx(x, y)``: sqrt(|m_x - m_y|²/d + (sqrt(M_x) - sqrt(M_y))²), M the mean squared norm
  of the centred rows divided by d.
- ``prdc_realism(x, y, nearest_k)``: per row of y, max over the rows of x whose k-NN radius
  (k-th neighbour, self excluded) is strictly below the median radius of radius / distance.
- ``compute_ct_score(train, test, gen)`` and its two variants: C_T with PCA to 64 dims (when
  d > 64) and KMeans(3 cells, n_init=10) fitted on train, both drawing from numpy's global
  state in that order; per cell the Mann–Whitney U (scipy, alternative "less") of gen's against
  test's distances to the nearest train row, z-scored with mean mn/2 - 1/2 and variance
  mn(m+n+1)/12; cells with more than 20 gen rows averaged with weights = test share.
  ``compute_ct_score_mode``: test split in two halves (first half as train);
  ``compute_ct_score_mem``: train and gen swapped.
- ``fls_inputs``: the subsets FLS uses (n = min(reduced_n, n_train//2, n_test, n_gen); test
  indices, gen indices, then 2n train indices from ``np.random.choice``; train split into
  train and baseline halves). ``compute_fls`` / ``compute_fls_overfit``: rows standardised by
  the mean and unbiased std of all four sets; a Gaussian KDE on the centres (gen or baseline)
  with one log-variance per centre, started at 0 and fitted to the train rows by 100 Adam steps
  (lr 0.5, lr × 0.1 from step 50, clamped to [-100, 20] after each step) on the mean NLL;
  FLS = 100·exp(-2 (NLL_test(gen) - NLL_test(baseline)) / d); FLS overfit = % of gen centres
  whose summed likelihood of the first s train rows beats that of the first s test rows,
  minus 50 (s = min(n_train, n_test)).

Random draws: the functions that use numpy's global state expect the caller to have run
``np.random.seed(seed)``; FD∞ takes its seed (dgm-eval leaves that generator unseeded).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA


def _f64(x) -> np.ndarray:
    return np.array(x, dtype=np.float64)


# ------------------------------------------------------------------ Fréchet distances

def compute_statistics(reps):
    """(mean, covariance with divisor n - 1) of the rows."""
    x = _f64(reps)
    mean = x.sum(axis=0) / len(x)
    centred = x - mean
    cov = centred.T @ centred / (len(x) - 1)
    return mean, cov


def compute_fd_with_stats(mu1, mu2, sigma1, sigma2, eps=1e-6):
    """|mu1 - mu2|² + Tr S1 + Tr S2 - 2 Tr sqrtm(S1 S2)."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(root)):
        shift = eps * np.eye(len(sigma1))
        root = scipy.linalg.sqrtm((sigma1 + shift) @ (sigma2 + shift))
    if np.iscomplexobj(root):
        if np.abs(np.diag(root).imag).max() > 1e-3:
            raise ValueError("sqrtm(S1 S2) has a large imaginary diagonal")
        root = root.real
    gap = mu1 - mu2
    return float(np.sum(gap * gap) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def compute_efficient_fd_with_reps(reps1, reps2):
    """FD with Tr sqrt(S1 S2) = sum over the eigenvalues lam of S1 S2 of Re sqrt(lam)."""
    mu1, s1 = compute_statistics(reps1)
    mu2, s2 = compute_statistics(reps2)
    lam = scipy.linalg.eigvals(s1 @ s2).astype(np.complex128)
    tr_root = np.sum(np.sqrt(lam).real)
    gap = mu1 - mu2
    return float(np.sum(gap * gap) + np.trace(s1) + np.trace(s2) - 2 * tr_root)


def compute_fd_infinity(reps1, reps2, seed, num_points=15):
    """Intercept at 1/N = 0 of the least-squares line through the points (1/N, FD_N)."""
    x, y = _f64(reps1), _f64(reps2)
    mu1, s1 = compute_statistics(x)
    first = min(5000, max(len(y) // 10, 2))
    sizes = np.linspace(first, len(y), num_points).astype("int32")
    gen = np.random.default_rng(seed)
    fd_n = []
    for size in sizes:
        picked = y[gen.choice(len(y), size, replace=False)]
        mu2, s2 = compute_statistics(picked)
        fd_n.append(compute_fd_with_stats(mu1, mu2, s1, s2))
    design = np.column_stack([np.ones(len(sizes)), 1.0 / sizes.astype(np.float64)])
    (intercept, _slope), *_ = np.linalg.lstsq(design, np.array(fd_n), rcond=None)
    return float(intercept)


# ------------------------------------------------------------------ kernel distance

def _cubic_kernel(a, b):
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _unbiased_mmd2(a, b):
    m = len(a)
    kaa, kbb, kab = _cubic_kernel(a, a), _cubic_kernel(b, b), _cubic_kernel(a, b)
    off_aa = kaa.sum() - np.trace(kaa)
    off_bb = kbb.sum() - np.trace(kbb)
    return off_aa / (m * (m - 1)) + off_bb / (m * (m - 1)) - 2 * kab.sum() / (m * m)


def compute_mmd(feat_real, feat_gen, n_subsets=100, subset_size=1000):
    """Unbiased cubic-kernel MMD² of `n_subsets` subset pairs (numpy's global state)."""
    x, y = _f64(feat_real), _f64(feat_gen)
    m = min(subset_size, len(x), len(y))
    values = np.zeros(n_subsets)
    for s in range(n_subsets):
        ix = np.random.choice(len(x), m, replace=False)
        iy = np.random.choice(len(y), m, replace=False)
        values[s] = _unbiased_mmd2(x[ix], y[iy])
    return values


# ------------------------------------------------------------------ vendi, authpct, sw

def compute_vendi_score(x):
    """exp(-sum p log p) over the positive eigenvalues p of X Xᵀ / n (unit-norm rows)."""
    rows = _f64(x)
    lengths = np.sqrt(np.sum(rows * rows, axis=1))
    lengths[lengths == 0] = 1.0  # an all-zero row stays all-zero
    rows = rows / lengths[:, None]
    eig = scipy.linalg.eigvalsh(rows @ rows.T / len(rows))
    p = eig[eig > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def compute_per_class_vendi_scores(reps, labels):
    """Vendi score of the rows of each class c = 0 .. (number of distinct labels) - 1."""
    labels = np.asarray(labels)
    n_classes = len(np.unique(labels))
    return np.array([compute_vendi_score(_f64(reps)[labels == c]) for c in range(n_classes)])


def compute_authpct(train_feat, gen_feat):
    """Percentage of generated rows judged authentic (not closer to the data than the data is)."""
    real, fake = _f64(train_feat), _f64(gen_feat)
    real_real = cdist(real, real)
    np.fill_diagonal(real_real, np.inf)
    own_gap = real_real.min(axis=1)  # each real row's distance to its nearest other real row
    fake_real = cdist(fake, real)
    authentic = 0
    for j in range(len(fake)):
        r = int(np.argmin(fake_real[j]))
        if own_gap[r] < fake_real[j, r]:
            authentic += 1
    return 100.0 * authentic / len(fake)


def sw_approx(x, y):
    """Approximate sliced Wasserstein-2 distance (Gaussian approximation of the projections)."""
    x, y = _f64(x), _f64(y)
    d = x.shape[1]
    mx, my = x.mean(axis=0), y.mean(axis=0)
    spread_x = np.mean(np.sum((x - mx) ** 2, axis=1)) / d
    spread_y = np.mean(np.sum((y - my) ** 2, axis=1)) / d
    return float(math.sqrt(np.sum((mx - my) ** 2) / d
                           + (math.sqrt(spread_x) - math.sqrt(spread_y)) ** 2))


# ------------------------------------------------------------------ realism score

def prdc_realism(real_features, fake_features, nearest_k):
    """Realism score of each fake row against the real rows with below-median k-NN radii."""
    real, fake = _f64(real_features), _f64(fake_features)
    # sorted distances to the own set: column 0 is the row itself, column k its k-th neighbour
    radius = np.sort(cdist(real, real), axis=1)[:, nearest_k]
    keep = radius < np.median(radius)
    dist = cdist(real[keep], fake)
    with np.errstate(divide="ignore"):
        ratios = radius[keep][:, None] / dist
    return ratios.max(axis=0)


# ------------------------------------------------------------------ data-copying test C_T

def _z_of_cell(test_rows, gen_rows, train_rows):
    """Mann–Whitney z-score of gen's vs test's distances to the nearest training row."""
    gen_gap = cdist(gen_rows, train_rows).min(axis=1)
    test_gap = cdist(test_rows, train_rows).min(axis=1)
    u = mannwhitneyu(gen_gap, test_gap, alternative="less").statistic
    m, n = len(gen_rows), len(test_rows)
    return (u - (m * n / 2 - 0.5)) / math.sqrt(m * n * (m + n + 1) / 12)


def compute_ct_score(train_feat, test_feat, gen_feat):
    """C_T; PCA (if d > 64) and KMeans draw from numpy's global state, in that order."""
    train, test, gen = _f64(train_feat), _f64(test_feat), _f64(gen_feat)
    if train.shape[1] > 64:
        pca = PCA(n_components=64).fit(train)
        train, test, gen = pca.transform(train), pca.transform(test), pca.transform(gen)
    cells = KMeans(n_clusters=3, n_init=10).fit(train)
    t_of, p_of, q_of = cells.predict(train), cells.predict(test), cells.predict(gen)
    weights, scores = [], []
    for c in range(3):
        t_c, p_c, q_c = train[t_of == c], test[p_of == c], gen[q_of == c]
        if len(t_c) == 0 or len(p_c) == 0:
            raise ValueError(f"cell {c} has no training or no test rows")
        if len(q_c) > 20:  # the cell holds more than 20 generated rows (tau = 20 / n_gen)
            weights.append(len(p_c) / len(test))
            scores.append(_z_of_cell(p_c, q_c, t_c))
    weights, scores = np.array(weights), np.array(scores)
    return float(np.sum(weights * scores) / np.sum(weights))


def compute_ct_score_mem(train_feat, test_feat, gen_feat):
    """C_T with the roles of the training and the generated rows exchanged."""
    return compute_ct_score(gen_feat, test_feat, train_feat)


def compute_ct_score_mode(train_feat, test_feat, gen_feat):
    """C_T of the generated rows against two halves of the test rows (first half as train)."""
    halves = np.array_split(_f64(test_feat), 2)
    return compute_ct_score(halves[0], halves[1], gen_feat)


# ------------------------------------------------------------------ feature likelihood score

def fls_inputs(train_reps, test_reps, gen_reps, reduced_n=10000):
    """(train, baseline, test, gen), n rows each, drawn from numpy's global state."""
    n = min(reduced_n, len(train_reps) // 2, len(test_reps), len(gen_reps))
    test_pick = np.random.choice(len(test_reps), n, replace=False)
    gen_pick = np.random.choice(len(gen_reps), n, replace=False)
    train_pick = np.random.choice(len(train_reps), 2 * n, replace=False)
    train = train_reps[train_pick]
    return train[:n], train[n:], test_reps[test_pick], gen_reps[gen_pick]


def _standardised(*sets):
    every = np.concatenate([_f64(s) for s in sets])
    mean, std = every.mean(axis=0), every.std(axis=0, ddof=1)
    return [(_f64(s) - mean) / std for s in sets]


def _log_kernel(sq_dist, log_var, dim):
    """log of (1/M) N(row; centre_j, exp(log_var_j) I) up to the constant -(dim/2) log 2π."""
    m = sq_dist.shape[1]
    return -0.5 * sq_dist / torch.exp(log_var) - 0.5 * dim * log_var - math.log(m)


def _mean_nll(sq_dist, log_var, dim):
    return -torch.logsumexp(_log_kernel(sq_dist, log_var, dim), dim=1).mean()


def _fit_log_var(rows, centres):
    """Per-centre log-variances fitted to `rows` (Adam, 100 steps) by autograd on the NLL."""
    sq = torch.tensor(cdist(rows, centres, "sqeuclidean"), dtype=torch.float64)
    log_var = torch.zeros(len(centres), dtype=torch.float64, requires_grad=True)
    adam = torch.optim.Adam([log_var], lr=0.5)
    steps = torch.optim.lr_scheduler.MultiStepLR(adam, milestones=[50], gamma=0.1)
    for _ in range(100):
        adam.zero_grad()
        _mean_nll(sq, log_var, rows.shape[1]).backward()
        adam.step()
        steps.step()
        with torch.no_grad():
            log_var.clamp_(-100.0, 20.0)
    return log_var.detach()


def _test_nll(test, centres, log_var):
    sq = torch.tensor(cdist(test, centres, "sqeuclidean"), dtype=torch.float64)
    return float(_mean_nll(sq, log_var, centres.shape[1]))


def compute_fls(train, baseline, test, gen):
    """Feature likelihood score of `gen` (float64, CPU)."""
    train, baseline, test, gen = _standardised(train, baseline, test, gen)
    nll_gen = _test_nll(test, gen, _fit_log_var(train, gen))
    nll_base = _test_nll(test, baseline, _fit_log_var(train, baseline))
    return 100.0 * math.exp(-2.0 * (nll_gen - nll_base) / train.shape[1])


def compute_fls_overfit(train, baseline, test, gen):
    """% of generated centres likelier under training rows than under test rows, minus 50."""
    train, baseline, test, gen = _standardised(train, baseline, test, gen)
    log_var = _fit_log_var(train, gen)
    s = min(len(train), len(test))
    dim = gen.shape[1]

    def per_centre(rows):
        sq = torch.tensor(cdist(rows[:s], gen, "sqeuclidean"), dtype=torch.float64)
        return torch.logsumexp(_log_kernel(sq, log_var, dim), dim=0).numpy()

    wins = int(np.sum(per_centre(train) - per_centre(test) > 0))
    return (wins / len(gen)) * 100 - 50  # this order of operations decides the last bit
