"""The metric contract, checked over every registered spec (torchmetrics' `MetricTester` is the
model): a metric gets these checks by being registered.

For each spec: the functional form (its compute function on all the inputs at once) equals the
stateful one (the family's states fed in batches on emulated ranks, pickled, merged in rank
order) across batch splits and shards; its outputs declare a direction and display; NaN input
is refused with a clear error; and its parity test against the reference library (or a closed
form where no library exists) is named in `PARITY`, which must cover every spec and name tests
that exist.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from diffbench.errors import MetricInputError
from diffbench.metrics.spec import Gaussian, MetricSpec, all_specs, values_of
from diffbench.metrics.states import FeatureBank, GaussianMoments
from diffbench.resolve import resolve_task

ROOT = Path(__file__).resolve().parent

# spec → the test that holds it to its reference library (or closed form), same inputs/weights.
PARITY = {
    "fid": "test_metrics_functional.py::test_fid_matches_cleanfid_and_torch_fidelity",
    "sfid": "test_score_adm.py::test_adm_fid_from_stored_stats_and_pr_from_ref_images",
    "kid": "test_metrics_functional.py::test_kid_matches_torch_fidelity",
    "isc": "test_metrics_functional.py::test_inception_score_matches_torch_fidelity",
    "prc": "test_metrics_functional.py::test_precision_recall_matches_torch_fidelity",
    "ssim": "test_vton_metrics.py::test_ssim_rgb_matches_torchmetrics_both_borders",
    "lpips": "test_vton_metrics.py::test_lpips_matches_lpips_package",
    "dino": "test_dreambooth_scoring.py::test_scores_equal_direct_computation",
    "clip_i": "test_dreambooth_scoring.py::test_scores_equal_direct_computation",
    "clip_t": "test_dreambooth_scoring.py::test_scores_equal_direct_computation",
    "dinov2": "test_dreambooth_scoring.py::test_dinov2_official_checkpoint_layout_loads_like_timm",
    "siglip_i": "test_dreambooth_metrics.py::test_image_text_and_oracle_scores_closed_form",
    "siglip_t": "test_dreambooth_metrics.py::test_image_text_and_oracle_scores_closed_form",
    "accuracy": "test_run.py::test_run_values_equal_a_direct_computation",
    "fd_dinov2": "test_fd_dinov2.py::test_features_and_fd_match_reference_float64",
    "prdc": "test_prdc.py::test_prdc_equals_compute_prdc",
    "cmmd": "test_cmmd.py::test_cmmd_equals_distance_py_and_plain_float64",
    "fd_eff": "test_dgm_eval.py::test_fd_eff_equals_dgm_eval",
    "fd_infinity": "test_dgm_eval.py::test_fd_infinity_equals_dgm_eval",
    "kd": "test_dgm_eval.py::test_kd_equals_dgm_eval_on_the_same_draws",
    "vendi": "test_dgm_eval.py::test_vendi_equals_dgm_eval",
    "vendi_per_class": "test_dgm_eval.py::test_vendi_per_class_equals_dgm_eval",
    "authpct": "test_dgm_eval.py::test_authpct_equals_dgm_eval",
    "sw_approx": "test_dgm_eval.py::test_sw_approx_equals_dgm_eval",
    "realism": "test_dgm_eval.py::test_realism_equals_dgm_eval",
    "ct": "test_memorization.py::test_ct_equals_dgm_eval",
    "ct_test": "test_memorization.py::test_ct_equals_dgm_eval",
    "ct_modified": "test_memorization.py::test_ct_equals_dgm_eval",
    "fls": "test_memorization.py::test_fls_equals_dgm_eval_float64",
    "fls_overfit": "test_memorization.py::test_fls_equals_dgm_eval_float64",
}
SPECS = all_specs()
SHARDS, BATCH = 3, 7  # emulated ranks, and the batch each rank feeds its state with


def _test_names(file: Path) -> set[str]:
    return {n.name for n in ast.parse(file.read_text()).body if isinstance(n, ast.FunctionDef)}


def missing_parity(specs: list[MetricSpec], table: dict[str, str]) -> list[str]:
    """What is wrong with the parity table for `specs` (one line each)."""
    out = [f"{s.name}: no parity test in PARITY" for s in specs if s.name not in table]
    for name, ref in table.items():
        file, _, test = ref.partition("::")
        if not (ROOT / file).is_file() or test not in _test_names(ROOT / file):
            out.append(f"{name}: parity test {ref} does not exist")
    return out


def test_every_spec_has_a_parity_test():
    assert missing_parity(SPECS, PARITY) == []


def test_removing_a_parity_test_fails_the_table():
    table = {**PARITY, "fid": "test_metrics_functional.py::test_removed"}
    assert missing_parity(SPECS, table) == [
        "fid: parity test test_metrics_functional.py::test_removed does not exist"]
    assert missing_parity(SPECS, {k: v for k, v in PARITY.items() if k != "kid"}) == [
        "kid: no parity test in PARITY"]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_direction_and_display_are_declared(spec):
    assert spec.summary and spec.outputs
    for out in spec.outputs:
        assert isinstance(out.higher_is_better, bool) and out.label, out
        assert isinstance(out.decimals, int) and out.decimals >= 0, out
        assert out.tolerance and set(out.tolerance) <= {"abs", "rel"}, out
    display = [k for k, a in spec.args.items() if a.display]
    assert display in ([], ["scale"]), display  # how a value is shown: its scale only


def _settings(spec: MetricSpec, n_real: int, n_fake: int) -> dict:
    """The settings under the first protocol that defines the metric, with what the counts
    cannot give lowered as the metric itself suggests (`MetricSpec.shortfalls`)."""
    protocols = spec.protocols()
    settings = resolve_task([spec.name], protocols[0])[spec.name].settings
    for short in spec.shortfalls(n_real, n_fake, settings) if spec.shortfalls else []:
        if short.setting:
            settings[short.setting] = short.suggest
    return settings


def _emulated_ranks(rows: np.ndarray, state_cls) -> object:
    """Rows fed batch by batch to one state per emulated rank, pickled, merged in rank order."""
    parts = np.array_split(np.arange(len(rows)), SHARDS)
    states = []
    for idx in parts:
        state = state_cls(rows.shape[1])
        for start in range(0, len(idx), BATCH):
            state.update(rows[idx[start:start + BATCH]])
        states.append(pickle.loads(pickle.dumps(state)))
    merged = states[0]
    for other in states[1:]:
        merged.merge(other)
    return merged


def _rows(seed: int, n: int, dim: int = 12) -> np.ndarray:
    rs = np.random.RandomState(seed)
    return (rs.randn(n, dim) @ rs.randn(dim, dim) * 0.5 + seed).astype(np.float32)


def _distribution(spec: MetricSpec):
    """(functional values, stateful values, bound) of a distribution metric."""
    real, fake = _rows(1, 130), _rows(2, 110)
    settings = _settings(spec, len(real), len(fake))
    form = spec.needs.form
    if form == "moments":
        def gauss(x):
            x64 = x.astype(np.float64)
            return Gaussian(x64.mean(0), np.cov(x64, rowvar=False), len(x))

        whole = (gauss(real), gauss(fake))
        states = [_emulated_ranks(x, GaussianMoments) for x in (real, fake)]
        split = tuple(Gaussian(s.mean(), s.cov(), s.n) for s in states)
        # float64 sums of n rows in another order: each moment within ~n·eps of the other
        bound = 64 * len(real) * np.finfo(np.float64).eps
    else:
        labels = np.arange(len(fake)) % fake.shape[1]
        whole = (real, fake) if form == "rows" else (fake,)
        if spec.needs.train:  # the training rows first: compute(train, test, fake)
            whole = (_rows(3, 120), *whole)
        split = tuple(_emulated_ranks(x, FeatureBank).array() for x in whole)
        if spec.needs.labels:
            whole, split = (*whole, labels), (*split, labels)
        bound = 0.0  # the rows are the same rows in the same order: the same numbers
    return (values_of(spec, spec.run(*whole, **settings)),
            values_of(spec, spec.run(*split, **settings)), bound)


def _paired(spec: MetricSpec):
    from tests._vton import weights_args

    rs = np.random.RandomState(3)
    gt = torch.from_numpy(rs.randint(0, 256, (8, 3, 40, 32)).astype(np.uint8))
    pred = torch.from_numpy(np.clip(gt.numpy().astype(int) + rs.randint(-40, 41, gt.shape), 0,
                                    255).astype(np.uint8))
    settings = _settings(spec, len(gt), len(gt))
    model = spec.model(settings, weights_args(), "cpu") if spec.model else None
    whole = spec.run(gt, pred, model=model, **settings)
    parts = [spec.run(gt[i:i + 3], pred[i:i + 3], model=model, **settings)
             for i in range(0, len(gt), 3)]
    return whole, torch.cat(parts), 1e-6  # per-pair values; float32 networks inside LPIPS


def _alignment(spec: MetricSpec):
    gen, against = _rows(4, 20, 16), _rows(5, 20 if spec.needs.against == "text" else 6, 16)
    whole = spec.run(gen, against)
    if spec.needs.against == "text":  # row-aligned: each image with its own text
        parts = [spec.run(gen[i:i + 7], against[i:i + 7]) for i in range(0, len(gen), 7)]
    else:
        parts = [spec.run(gen[i:i + 7], against) for i in range(0, len(gen), 7)]
    return whole, np.concatenate(parts), 0.0


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_functional_equals_stateful_across_batches_and_shards(spec):
    if spec.family == "distribution":
        whole, split, bound = _distribution(spec)
        assert set(whole) == {o.key for o in spec.outputs}
        for key in whole:
            a, b = whole[key].value, split[key].value
            assert abs(a - b) <= bound * max(1.0, abs(a)), (key, a, b)
        return
    whole, split, bound = (_paired if spec.family == "paired" else _alignment)(spec)
    whole, split = np.asarray(whole, np.float64), np.asarray(split, np.float64)
    assert whole.shape == split.shape and np.all(np.abs(whole - split) <= bound), spec.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_nan_input_is_a_clear_error(spec):
    if spec.family == "paired":  # images are uint8: a NaN cannot reach a paired metric
        return
    bad = _rows(6, 40, 16)
    bad[3, 2] = np.nan
    if spec.family == "alignment":
        with pytest.raises(MetricInputError, match=f"{spec.name}: its inputs hold NaN/inf"):
            spec.run(bad, _rows(7, 40, 16))
        return
    state = GaussianMoments(16) if spec.needs.form == "moments" else FeatureBank(16)
    with pytest.raises(MetricInputError, match="NaN/inf features"):
        state.update(bad)  # what a distribution metric is fed through
    ok = _rows(8, 40, 16).astype(np.float64)
    inputs = {"moments": (Gaussian(ok.mean(0), np.cov(bad, rowvar=False), 40),) * 2,
              "rows": (ok, bad), "fake_rows": (bad,)}[spec.needs.form]
    inputs = (ok, *inputs) if spec.needs.train else inputs
    with pytest.raises(MetricInputError, match=f"{spec.name}: its inputs hold NaN/inf"):
        spec.run(*inputs, *([np.zeros(40, np.int64)] if spec.needs.labels else []))
