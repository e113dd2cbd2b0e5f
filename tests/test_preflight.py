"""Checks before the work: metric argument schemas, protocol compatibility, sample counts,
device, run-directory layout, safe names and dataset paths. Each fails in one line, exit 2,
before the first image is generated or read."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from diffbench import results
from diffbench.cli import main
from diffbench.errors import DataError
from diffbench.metrics.args import Arg, check_args
from diffbench.protocols import get_protocol
from diffbench.registry import METRICS, PROTOCOLS
from diffbench.resolve import resolve_task
from tests._faults import one_error, warnings_of

SUITE = """
name: pre
version: 1
tasks:
  {task}:
    condition: class
    generation: {{images_per_condition: {per}, seed: 1, sampler: {{num_classes: 10}}}}
    protocol: {protocol}
    metrics: {metrics}
    reference:
      dataset: {{name: digits, reader: sklearn-digits, args: {{size: 32, split: test}}}}
"""


def suite(tmp_path: Path, metrics: str = "{fid: {}}", protocol: str = "demo-digits",
          task: str = "digits", per: int = 2, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(SUITE.format(task=task, per=per, protocol=protocol,
                                                 metrics=metrics)))
    return path


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ---------------------------------------------------------------- argument schemas


def test_check_args_names_types_ranges_and_choices():
    schema = {"splits": Arg("int", 10, "splits", minimum=1),
              "seed": Arg("int", None, "seed", nullable=True),
              "variant": Arg("str", "a", "v", choices=("a", "b")),
              "size": Arg("size", None, "hw", nullable=True),
              "scale": Arg("float", 1.0, "s", minimum=0)}
    assert check_args(schema, {"splits": 3, "seed": None, "variant": "b", "size": [4, 5],
                               "scale": 1000}) == []
    lines = check_args(schema, {"splts": 3, "splits": "ten", "seed": True, "variant": "c",
                                "size": [4], "scale": -1})
    assert lines == [
        "splts: unknown argument; did you mean 'splits'? accepted: splits, seed, variant, size, "
        "scale",
        "splits: must be an integer >= 1, got 'ten'",
        "seed: must be an integer or null, got True",  # YAML true is not an integer
        "variant: must be one of a, b, got 'c'",
        "size: must be [height, width] (two integers) or null, got [4]",
        "scale: must be a number >= 0, got -1"]
    assert check_args(None, {"anything": 1}) == []  # a plugin metric without a schema


def test_every_shipped_protocol_setting_passes_its_metric_schema():
    """The schemas accept what the shipped protocols set (they describe the same arguments)."""
    for pname in PROTOCOLS.names():
        proto = get_protocol(pname)
        for metric in proto.metrics:
            settings = proto.param(metric)
            settings.pop("std", None)  # IS: recorded, not read (not a suite argument)
            assert check_args(METRICS.get(metric).args, settings) == [], (pname, metric)


def test_schema_choices_match_the_implementations():
    """What a schema allows is what the code behind it implements."""
    from diffbench.features import dino
    from diffbench.features.lpips import TAPS
    from diffbench.metrics import alignment as A

    assert METRICS.get("lpips").args["net"].choices == tuple(TAPS)
    assert A.DINO_ARGS["average"].choices == A.AVERAGES
    assert A.DINO_ARGS["interpolation"].choices == dino.INTERPOLATIONS
    assert A.DINO_ARGS["resize_mode"].choices == dino.RESIZE_MODES
    # the alignment family builds each extractor from the arguments marked for it
    from diffbench.features.clip import ClipExtractor

    for name, cls in (("dino", dino.DinoExtractor), ("clip_t", ClipExtractor)):
        marked = {k for k, a in METRICS.get(name).args.items() if a.extractor}
        assert marked and marked <= set(inspect.signature(cls).parameters), name


def test_arguments_go_to_params_for_every_metric():
    task = resolve_task({"kid": {"subset_size": 10, "scale": 1000}, "fid": {"scale": 2}},
                        "torch-fidelity")
    proto = task.protocol
    assert proto.param("kid") == {**get_protocol("torch-fidelity").param("kid"),
                                  "subset_size": 10, "scale": 1000}
    assert proto.param("fid") == {"scale": 2}
    assert task["kid"].settings["subset_size"] == 10 and task["kid"].scale == 1000.0
    assert task["fid"].protocol is proto and task["fid"].outputs == ("fid",)


def test_validate_reports_bad_metric_arguments(tmp_path):
    path = suite(tmp_path, "{fid: {args: {foo: 1}}, isc: {args: {splits: ten}}, "
                           "kid: {args: {subset_siz: 5}}, prc: {args: {k: true}}}")
    res = invoke("suites", "validate", path)
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert lines == [
        f"{path}: tasks.digits.metrics.fid.args.foo: unknown argument; accepted: scale",
        f"{path}: tasks.digits.metrics.isc.args.splits: must be an integer >= 1, got 'ten'",
        f"{path}: tasks.digits.metrics.kid.args.subset_siz: unknown argument; did you mean "
        "'subset_size'? accepted: variant, subsets, subset_size, seed, scale",
        f"{path}: tasks.digits.metrics.prc.args.k: must be an integer >= 1, got True"]


def test_run_refuses_bad_arguments_before_any_image(tmp_path):
    path = suite(tmp_path, "{isc: {args: {splits: ten}}}")
    res = invoke("run", path, "--model", "toy", "--out", tmp_path / "r")
    one_error(res, "tasks.digits.metrics.isc.args.splits: must be an integer")
    assert not (tmp_path / "r").exists()


def test_protocol_metric_compatibility_is_checked_for_every_task(tmp_path):
    path = suite(tmp_path, "{fid: {}, isc: {}}", protocol="clean-fid")
    line = one_error(invoke("run", path, "--model", "toy", "--out", tmp_path / "r"),
                     "protocol 'clean-fid' does not define isc", "torch-fidelity")
    assert "tasks.digits.metrics.isc" in line and not (tmp_path / "r").exists()
    ok = suite(tmp_path, "{fid: {}, isc: {protocol: torch-fidelity}}", protocol="clean-fid",
               name="ok.yaml")
    assert invoke("suites", "validate", ok).exit_code == 0


def test_adm_splits_argument_would_be_ignored(tmp_path):
    path = suite(tmp_path, "{isc: {args: {splits: 4}}}", protocol="adm")
    res = invoke("suites", "validate", path)
    assert res.exit_code == 2 and "'splits' does not apply" in res.stderr
    assert "split_size" in res.stderr


# ---------------------------------------------------------------- sample counts from the plan


@pytest.mark.parametrize("metrics,needles", [
    ("{kid: {}}", ["kid: subset size 100 needs at least 100 images per side",
                   "360 reference and 20 generated", "subset_size=20"]),
    ("{isc: {args: {splits: 30}}}", ["30 splits need at least 30 generated images"]),
    ("{prc: {args: {k: 25}}}", ["prc with k=25 needs more than 25 images per side"]),
])
def test_sample_counts_are_checked_before_generation(tmp_path, metrics, needles):
    path = suite(tmp_path, metrics)  # 2 images per class: 20 generated
    res = invoke("run", path, "--model", "toy", "--model-arg", "size=32", "--out",
                 tmp_path / "r")
    one_error(res, *needles)
    assert not (tmp_path / "r" / "samples").exists()  # failed before the first image


def test_fid_bias_warning_comes_first(tmp_path):
    path = suite(tmp_path, "{fid: {}}")
    res = invoke("generate", path, "--model", "toy", "--model-arg", "size=32", "--out",
                 tmp_path / "g")
    assert res.exit_code == 0 and "fewer images" not in res.output  # generate does not score
    with warnings_of("diffbench") as seen:
        res = invoke("run", path, "--model", "toy", "--model-arg", "size=32", "--out",
                     tmp_path / "g")
    assert res.exit_code == 0, res.output
    assert any(w.startswith("task digits: fid: fewer images (20) than feature dimensions (64)")
               for w in seen), seen
    # the same warning the metric records in its details, given before the features
    assert "fewer images" in results.read(tmp_path / "g" / "results" / "digits.json")[
        "metrics"]["fid"]["details"]["warning"]


@pytest.mark.slow  # over ~10 s on 2 cores (docs/development.md)
def test_feature_dims_match_the_extractors():
    from diffbench.features import LAYER_DIMS as FEATURE_DIMS
    from diffbench.features import build_extractor

    ext = build_extractor("digits")
    out = ext.forward(torch.zeros(2, 1, 32, 32))
    assert out["features"].shape[1] == FEATURE_DIMS["features"]
    from diffbench.features.inception_net import InceptionNet

    net = InceptionNet().eval()
    with torch.no_grad():
        feats = net(torch.zeros(1, 3, 299, 299))
    assert feats["pool3"].shape[1] == FEATURE_DIMS["pool3"]
    assert feats["sfid"].shape[1] == FEATURE_DIMS["sfid"]


def test_stats_reference_without_rows_is_refused_for_kid(tmp_path):
    from diffbench import stats as stats_lib
    from diffbench.data.digits import DigitsSource
    from diffbench.extract import extract
    from diffbench.features import build_extractor

    ext = build_extractor("digits")
    fs = extract(DigitsSource(32, "test"), ext, ("features",), (), 64, 0)
    stats_lib.save(tmp_path / "ref.npz", fs.moments, fs.banks, ext.fingerprint(), "demo-digits",
                   {}, fs.n)
    text = SUITE.replace("      dataset: {{name: digits, reader: sklearn-digits, args: {{size: "
                         "32, split: test}}}}", "      stats: ref")
    path = tmp_path / "st.yaml"
    path.write_text(textwrap.dedent(text.format(task="digits", per=10, protocol="demo-digits",
                                                metrics="{fid: {}, kid: {args: {subset_size: "
                                                        "50}}}")))
    res = invoke("run", path, "--model", "toy", "--data", f"ref={tmp_path / 'ref.npz'}",
                 "--out", tmp_path / "r")
    one_error(res, "kid needs the reference's features features", "--keep-features")


# ---------------------------------------------------------------- device


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
@pytest.mark.parametrize("command", [
    ["run", "SUITE", "--model", "toy", "--device", "cuda"],
    ["generate", "SUITE", "--model", "toy", "--device", "cuda"],
    ["score", "--real", "r", "--fake", "f", "--device", "cuda:3"],
    ["stats", "compute", "r", "-o", "o.npz", "--device", "cuda"],
])
def test_cuda_without_gpu_is_one_line(tmp_path, command):
    path = suite(tmp_path)
    res = invoke(*[str(path) if c == "SUITE" else c for c in command])
    one_error(res, "no usable CUDA GPU", "use --device cpu")


def test_unknown_device_type(tmp_path):
    one_error(invoke("score", "--real", "r", "--fake", "f", "--device", "tpu"),
              "expected cpu, cuda, cuda:N or mps")


# ---------------------------------------------------------------- names and paths


def test_task_name_that_escapes_is_refused(tmp_path):
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    path = suite(work, task="../../../escaped-task")
    res = invoke("suites", "validate", path)
    assert res.exit_code == 2
    assert "task name '../../../escaped-task' is not usable as a file name" in res.stderr
    before = files_under(tmp_path)
    one_error(invoke("run", path, "--model", "toy", "--out", work / "r"), "escaped-task")
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("sweep,needle", [
    ("cfg_scale=a/../../../../sweep-escaped", "value 'a/../../../../sweep-escaped'"),
    ("../x=1", "'../x'"),
    ("cfg_scale=..", "value '..'"),
])
def test_sweep_values_that_escape_are_refused(tmp_path, sweep, needle):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    path = suite(work)
    before = files_under(tmp_path)
    one_error(invoke("run", path, "--model", "toy", "--out", work / "r", "--sweep", sweep),
              needle)
    assert files_under(tmp_path) == before


def test_negative_and_float_sweep_values_are_fine():
    from diffbench.names import check_sweep_value

    for value in (-1, 0.5, 1e-05, "euler", True, None):
        check_sweep_value(value, "--sweep x")


def test_out_with_a_file_where_folders_go(tmp_path):
    path = suite(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "samples").write_text("not a folder")
    one_error(invoke("run", path, "--model", "toy", "--out", tmp_path / "r"),
              "r/samples: is a file", "--out")
    (tmp_path / "r" / "samples").unlink()
    (tmp_path / "r" / "results" / "digits.json").mkdir(parents=True)
    one_error(invoke("run", path, "--model", "toy", "--out", tmp_path / "r"),
              "results/digits.json: is a folder")


def test_reader_path_arguments_stay_inside_the_dataset(tmp_path):
    from tests._vton import write_vitonhd

    root = write_vitonhd(tmp_path / "data" / "vitonhd")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET first line\n")
    for arg, value in (("pairs_file", "../../secret.txt"), ("pairs_file", str(secret)),
                       ("split", "../../../../etc")):
        text = f"""
        name: vt
        version: 1
        tasks:
          t:
            condition: tryon
            dataset: {{name: vitonhd, reader: vitonhd, args: {{{arg}: '{value}'}}}}
            protocol: catvton
            metrics: {{ssim: {{}}}}
        """
        path = tmp_path / "vt.yaml"
        path.write_text(textwrap.dedent(text))
        res = invoke("run", path, "--model", "toy", "--data", f"vitonhd={root}", "--out",
                     tmp_path / "r")
        one_error(res, f"vitonhd: {arg} {value!r}: must be a path relative to the dataset root")
        assert "TOPSECRET" not in res.output
    from diffbench.data.vitonhd import VitonHD

    with pytest.raises(DataError, match="without '..'"):
        VitonHD(root, pairs_file="../secret.txt")
    assert len(VitonHD(root, pairs_file="test_pairs.txt").pairs) == 5


def test_score_checks_counts_before_extracting(tmp_path):
    from tests.conftest import write_images

    real, fake = write_images(tmp_path / "real", 30, 0), write_images(tmp_path / "fake", 30, 1)
    (fake / "9999.png").write_bytes(b"not an image: extraction would stop here")
    base = ["score", "--real", real, "--fake", fake, "--protocol", "demo-digits", "--workers", "0"]
    one_error(invoke(*base, "--metrics", "kid"), "kid: subset size 100 needs at least 100",
              "30 reference and 31 generated", "--metric-arg kid.subset_size=30")
    one_error(invoke(*base, "--metrics", "fid"), "9999.png")  # counts are fine: it extracts
