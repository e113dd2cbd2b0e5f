"""The parity reference: dgm-eval's metric code, transcribed (it is not on PyPI).

Source: layer6ai-labs/dgm-eval, commit d57a6d2d6bd613332dd21696994afff8efa78575, files
``dgm_eval/metrics/{fd,mmd,vendi,authpct,sw,prdc,ct,fls}.py``; each function below names the
function it transcribes. The operations, their order, dtypes and library calls are dgm-eval's;
only these changes, each marked ``# change:``, were made:

- progress bars and prints to stderr are left out;
- ``scipy.linalg.sqrtm(..., disp=False)`` lost its ``disp`` argument in SciPy 1.16: the call
  returns the matrix alone;
- ``compute_FD_infinity`` draws from ``np.random.default_rng(seed)`` instead of an unseeded
  ``default_rng()`` (the tests pass the seed diffbench records);
- ``fls.py`` moves tensors with ``.to(device)`` instead of ``.cuda()`` and builds them in
  ``dtype`` (dgm-eval: float32 on CUDA) so the tests run it on the CPU, in float64 where they
  claim exactness.

Draws dgm-eval makes from numpy's global random state (KD's subsets, PCA and KMeans in ct,
the FLS and PRDC subsets in ``__main__.compute_scores``) are made here from the same global
state: a test seeds it with ``np.random.seed(seed)`` before calling.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import sklearn.metrics
import torch
from scipy.stats import mannwhitneyu
from sklearn import preprocessing
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression
from sklearn.metrics.pairwise import polynomial_kernel
from sklearn.neighbors import NearestNeighbors

# ---------------------------------------------------------------- fd.py

def compute_statistics(reps):  # fd.py compute_statistics
    mu = np.atleast_1d(np.mean(reps, axis=0))
    sigma = np.atleast_2d(np.cov(reps, rowvar=False))
    return mu, sigma


def compute_fd_with_stats(mu1, mu2, sigma1, sigma2, eps=1e-6):  # fd.py compute_FD_with_stats
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))  # change: no disp argument
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean


def compute_efficient_fd_with_reps(reps1, reps2):  # fd.py compute_efficient_FD_with_reps
    mu1, sigma1 = compute_statistics(reps1)
    mu2, sigma2 = compute_statistics(reps2)
    sqrt_trace = np.real(scipy.linalg.eigvals(sigma1 @ sigma2) ** 0.5).sum()
    return ((mu1 - mu2) ** 2).sum() + sigma1.trace() + sigma2.trace() - 2 * sqrt_trace


def compute_fd_infinity(reps1, reps2, seed, num_points=15):  # fd.py compute_FD_infinity
    fds = []
    fd_batches = np.linspace(min(5000, max(len(reps2) // 10, 2)), len(reps2),
                             num_points).astype("int32")
    mu1, sigma1 = compute_statistics(reps1)
    rng = np.random.default_rng(seed)  # change: seeded
    for fd_batch_size in fd_batches:
        fd_activations = rng.choice(reps2, fd_batch_size, replace=False)
        mu2, sigma2 = compute_statistics(fd_activations)
        fds.append(compute_fd_with_stats(mu1, mu2, sigma1, sigma2, eps=1e-6))
    fds = np.array(fds).reshape(-1, 1)
    reg = LinearRegression().fit(1 / fd_batches.reshape(-1, 1), fds)
    return reg.predict(np.array([[0]]))[0, 0]


# ---------------------------------------------------------------- mmd.py

def compute_mmd(feat_real, feat_gen, n_subsets=100, subset_size=1000):  # mmd.py compute_mmd
    m = min(feat_real.shape[0], feat_gen.shape[0])
    subset_size = min(subset_size, m)
    mmds = np.zeros(n_subsets)
    choice = np.random.choice
    for i in range(n_subsets):
        g = feat_real[choice(len(feat_real), subset_size, replace=False)]
        r = feat_gen[choice(len(feat_gen), subset_size, replace=False)]
        mmds[i] = compute_polynomial_mmd(g, r)
    return mmds


def compute_polynomial_mmd(feat_r, feat_gen, degree=3, gamma=None, coef0=1):
    # mmd.py compute_polynomial_mmd and _mmd2_and_variance
    k_xx = polynomial_kernel(feat_r, degree=degree, gamma=gamma, coef0=coef0)
    k_yy = polynomial_kernel(feat_gen, degree=degree, gamma=gamma, coef0=coef0)
    k_xy = polynomial_kernel(feat_r, feat_gen, degree=degree, gamma=gamma, coef0=coef0)
    m = k_xx.shape[0]
    kt_xx_sum = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()
    kt_yy_sum = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    k_xy_sum = k_xy.sum(axis=0).sum()
    mmd2 = (kt_xx_sum + kt_yy_sum) / (m * (m - 1))
    mmd2 -= 2 * k_xy_sum / (m * m)
    return mmd2


# ---------------------------------------------------------------- vendi.py, authpct.py, sw.py

def compute_vendi_score(x):  # vendi.py compute_vendi_score (q=1, normalize, linear kernel)
    x = preprocessing.normalize(x, axis=1)
    n = x.shape[0]
    w = scipy.linalg.eigvalsh(x @ x.T / n)
    p = w[w > 0]
    return np.exp(-(p * np.log(p)).sum())


def compute_per_class_vendi_scores(reps, labels):  # vendi.py
    num_classes = len(np.unique(labels))
    out = np.zeros(shape=num_classes)
    for i in range(num_classes):
        out[i] = compute_vendi_score(reps[labels == i])
    return out


def compute_authpct(train_feat, gen_feat):  # authpct.py compute_authpct
    with torch.no_grad():
        train_feat = torch.tensor(train_feat, dtype=torch.float32)
        gen_feat = torch.tensor(gen_feat, dtype=torch.float32)
        real_dists = torch.cdist(train_feat, train_feat)
        real_dists.fill_diagonal_(float("inf"))
        gen_dists = torch.cdist(train_feat, gen_feat)
        real_min_dists = real_dists.min(axis=0)
        gen_min_dists = gen_dists.min(dim=0)
        authen = real_min_dists.values[gen_min_dists.indices] < gen_min_dists.values
        return (100 * torch.sum(authen) / len(authen)).item()


def sw_approx(x, y):  # sw.py sw_approx
    d = x.shape[1]
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    mean_term = np.linalg.norm(mean_x - mean_y) ** 2 / d
    m2_xc = (np.linalg.norm(x - mean_x, axis=1) ** 2).mean() / d
    m2_yc = (np.linalg.norm(y - mean_y, axis=1) ** 2).mean() / d
    return (mean_term + (m2_xc ** (1 / 2) - m2_yc ** (1 / 2)) ** 2) ** (1 / 2)


# ---------------------------------------------------------------- prdc.py (realism)

def prdc_realism(real_features, fake_features, nearest_k):
    # prdc.py compute_pairwise_distance, get_kth_value, compute_nearest_neighbour_distances and
    # the realism branch of compute_prdc
    def pairwise(x, y=None):
        return sklearn.metrics.pairwise_distances(x, x if y is None else y, metric="euclidean",
                                                  n_jobs=8)

    def kth(unsorted, k):
        idx = np.argpartition(unsorted, k, axis=-1)[..., :k]
        return np.take_along_axis(unsorted, idx, axis=-1).max(axis=-1)

    radii = kth(pairwise(real_features), nearest_k + 1)
    distance_real_fake = pairwise(real_features, fake_features)
    mask = radii < np.median(radii)
    with np.errstate(divide="ignore"):
        return (np.expand_dims(radii[mask], axis=1) / distance_real_fake[mask]).max(axis=0)


# ---------------------------------------------------------------- ct.py

def preprocess_ct(train_feat, test_feat, gen_feat):  # ct.py preprcoess_ct
    if train_feat.shape[1] > 64:
        pca = PCA(n_components=64).fit(train_feat)
        return pca.transform(train_feat), pca.transform(test_feat), pca.transform(gen_feat)
    return train_feat, test_feat, gen_feat


def zu(pn, qm, t):  # ct.py Zu
    m, n = qm.shape[0], pn.shape[0]
    t_nn = NearestNeighbors(n_neighbors=1).fit(t)
    lqm, _ = t_nn.kneighbors(X=qm, n_neighbors=1)
    lpn, _ = t_nn.kneighbors(X=pn, n_neighbors=1)
    u, _ = mannwhitneyu(lqm, lpn, alternative="less")
    mean = (n * m / 2) - 0.5
    std = np.sqrt(n * m * (n + m + 1) / 12)
    return (u - mean) / std


def zu_cells(pn, pn_cells, qm, qm_cells, t, t_cells):  # ct.py Zu_cells
    k = len(np.unique(pn_cells))
    out = np.zeros(k)
    for i in range(k):
        pn_i, qm_i, t_i = pn[pn_cells == i], qm[qm_cells == i], t[t_cells == i]
        if len(pn_i) * len(t_i) == 0:
            raise ValueError(f"Cell {i} lacks test samples and/or training samples.")
        out[i] = zu(pn_i, qm_i, t_i)[0] if len(qm_i) > 0 else 0  # change: [0] (1-element array)
    return out


def c_t(pn, pn_cells, qm, qm_cells, t, t_cells, tau):  # ct.py C_T
    m, n = qm.shape[0], pn.shape[0]
    k = np.max(np.unique(t_cells)) + 1
    labels, cts = np.unique(qm_cells, return_counts=True)
    qm_cts = np.zeros(k)
    qm_cts[labels.astype(int)] = cts
    pi_tau = qm_cts / m > tau
    labels, cts = np.unique(pn_cells, return_counts=True)
    pn_cts = np.zeros(k)
    pn_cts[labels.astype(int)] = cts
    pn_of_pi = pn_cts / n
    scores = zu_cells(pn, pn_cells, qm, qm_cells, t, t_cells)
    return pn_of_pi[pi_tau].dot(scores[pi_tau]) / np.sum(pn_of_pi[pi_tau])


def compute_ct_score(train_feat, test_feat, gen_feat):  # ct.py compute_CTscore
    train_feat, test_feat, gen_feat = preprocess_ct(train_feat, test_feat, gen_feat)
    km = KMeans(n_clusters=3, n_init=10).fit(train_feat)
    return c_t(test_feat, km.predict(test_feat), gen_feat, km.predict(gen_feat), train_feat,
               km.predict(train_feat), tau=20 / len(gen_feat))


def compute_ct_score_mem(train_feat, test_feat, gen_feat):  # ct.py compute_CTscore_mem
    return compute_ct_score(gen_feat, test_feat, train_feat)


def compute_ct_score_mode(train_feat, test_feat, gen_feat):  # ct.py compute_CTscore_mode
    test_feat1, test_feat2 = np.array_split(test_feat, 2)
    return compute_ct_score(test_feat1, test_feat2, gen_feat)


# ---------------------------------------------------------------- fls.py

def preprocess_fls(train, baseline, test, gen, device, dtype):  # fls.py preprocess_fls
    sets = [torch.tensor(x, dtype=dtype).to(device) for x in (train, baseline, test, gen)]
    every = torch.cat(sets, dim=0)  # change: .to(device), dtype (dgm-eval: float32, .cuda())
    mean, std = every.mean(dim=0), every.std(dim=0)
    return [(x - mean) / std for x in sets]


def compute_dists(x_data, x_kernel):  # fls.py compute_dists
    return (torch.cdist(x_data, x_kernel) ** 2).detach()


def get_pairwise_likelihood(x_data, x_kernel, log_sigmas):  # fls.py get_pairwise_likelihood
    dists = compute_dists(x_data, x_kernel)
    exponent_term = (-0.5 * dists) / torch.exp(log_sigmas)
    exponent_term -= (x_kernel.shape[1] / 2) * log_sigmas
    exponent_term += torch.log(torch.tensor(1 / dists.shape[1]))
    return exponent_term


def nll(dists, log_sigmas, dim, lambd=0, detailed=False):  # fls.py nll
    exponent_term = (-0.5 * dists) / torch.exp(log_sigmas)
    exponent_term -= (dim / 2) * log_sigmas
    exponent_term += torch.log(torch.tensor(1 / dists.shape[1]))
    inner_term = torch.logsumexp(exponent_term, dim=1)
    final_nll = torch.mean(-inner_term) + lambd / 2 * torch.norm(torch.exp(-log_sigmas)) ** 2
    return (final_nll, -inner_term) if detailed else final_nll


def optimize_sigmas(x_data, x_kernel, init_val=1):  # fls.py optimize_sigmas
    log_sigmas = torch.ones(x_kernel.shape[0], requires_grad=True, device=x_data.device,
                            dtype=x_data.dtype)  # change: device and dtype of the data
    log_sigmas.data = init_val * log_sigmas
    optim = torch.optim.Adam([log_sigmas], lr=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optim, milestones=[50], gamma=0.1)
    dim = x_data.shape[1]
    dists = compute_dists(x_data, x_kernel)
    for _ in range(100):
        loss = nll(dists, log_sigmas, dim)
        optim.zero_grad()
        loss.backward()
        optim.step()
        scheduler.step()
        with torch.no_grad():
            log_sigmas.data = log_sigmas.clamp(-100, 20).data
    return log_sigmas


def evaluate_set(evaluated_set, x_kernel, log_sigmas):  # fls.py evaluate_set
    dists = compute_dists(evaluated_set, x_kernel)
    nlls = nll(dists, log_sigmas, x_kernel.shape[1], detailed=True)
    return nlls[0].detach().cpu().numpy(), nlls[1]


def compute_fls(train, baseline, test, gen, device="cpu", dtype=torch.float32):
    # fls.py compute_fls
    train, baseline, test, gen = preprocess_fls(train, baseline, test, gen, device, dtype)
    gen_sig = optimize_sigmas(train, gen, init_val=0)
    gen_nll = evaluate_set(test, gen, gen_sig)[0].item()
    base_sig = optimize_sigmas(train, baseline, init_val=0)
    baseline_nll = evaluate_set(test, baseline, base_sig)[0].item()
    diff = 2 * (gen_nll - baseline_nll) / train.shape[1]
    return math.e ** (-diff) * 100


def compute_fls_overfit(train, baseline, test, gen, device="cpu", dtype=torch.float32):
    # fls.py compute_fls_overfit
    train, baseline, test, gen = preprocess_fls(train, baseline, test, gen, device, dtype)
    gen_sig = optimize_sigmas(train, gen, init_val=0)
    size = min(test.shape[0], train.shape[0])
    train_lls = get_pairwise_likelihood(train[:size], gen, gen_sig)
    test_lls = get_pairwise_likelihood(test[:size], gen, gen_sig)
    ll_diff = train_lls.logsumexp(axis=0) - test_lls.logsumexp(axis=0)
    return ((ll_diff > 0).sum().item() / ll_diff.shape[0]) * 100 - 50


def fls_inputs(train_reps, test_reps, gen_reps, reduced_n=10000):
    # __main__.py compute_scores, the draws before compute_fls (numpy's global state)
    reduced_n = min(reduced_n, train_reps.shape[0] // 2, test_reps.shape[0], gen_reps.shape[0])
    test_reps = test_reps[np.random.choice(test_reps.shape[0], reduced_n, replace=False)]
    gen_reps = gen_reps[np.random.choice(gen_reps.shape[0], reduced_n, replace=False)]
    train_reps = train_reps[np.random.choice(train_reps.shape[0], 2 * reduced_n, replace=False)]
    return train_reps[:reduced_n], train_reps[reduced_n:], test_reps, gen_reps
