"""`diffbench run suites/vitonhd.yaml|dresscode.yaml` end to end with the folder adapter.

Tiny datasets in the real layouts, "generated" images named as the try-on scripts name them
(``<person>.jpg``, one flat folder per setting and category), random Inception and SqueezeNet
weights from files. Every paired (SSIM, LPIPS, FID, KID) and unpaired (FID, KID) number of the
records equals a direct computation: CatVTON's per-image loop (torchmetrics SSIM, lpips package)
for SSIM/LPIPS, and `diffbench score` on a folder holding exactly the real person images for
FID/KID. Broken layouts stop before the first image with one line and exit code 2.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffbench import results
from diffbench.cli import main
from diffbench.data.dresscode import DressCode
from diffbench.data.samples import SampleSet
from diffbench.data.vitonhd import VitonHD
from diffbench.protocols import get_protocol
from diffbench.report.build import build_report
from diffbench.scoring.base import TaskInputs
from diffbench.suite import default_suites_dir, load_suite
from tests._vton import (
    DC_IDS,
    VH_IDS,
    weights_args,
    write_dresscode,
    write_generated,
    write_vitonhd,
)
from tests.test_vton_scoring import catvton_direct

SUITES = default_suites_dir()


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def weight_args(inception: Path) -> list[str]:
    pairs = {"inception-2015-12-05": str(inception), **weights_args(("squeeze",))}
    return [x for name, path in pairs.items() for x in ("--weights", f"{name}={path}")]


def run_suite(suite: str, data: str, made: str, out: Path, inception: Path, *extra):
    return invoke("run", SUITES / f"{suite}.yaml", "--model", "folder", "--model-arg",
                  f"path={made}", "--data", data, "--out", out, "--workers", "0",
                  "--score-batch-size", "3", *weight_args(inception), *extra)


def direct_distribution(persons: list[Path], samples: Path, tmp: Path, inception: Path) -> dict:
    """FID and KID of `diffbench score` against a folder of exactly these real images."""
    real = tmp / f"real-{samples.name}"
    real.mkdir()
    for p in persons:
        shutil.copy(p, real / p.name)
    out = tmp / f"score-{samples.name}.json"
    res = invoke("score", "--real", real, "--fake", samples, "--protocol", "catvton",
                 "--metrics", "fid,kid", "--workers", "0", "--batch-size", "3", "--json", out,
                 "--weights", f"inception-2015-12-05={inception}")
    assert res.exit_code == 0, res.output
    return {m: e["value"] for m, e in results.read(out)["metrics"].items()}


def check_record(path: Path, reader, task, tmp: Path, inception: Path, paired: bool) -> dict:
    rec = results.read(path)
    folder = path.parent.parent / "samples" / path.stem
    samples = SampleSet(folder)
    persons = sorted({Path(it.condition["person"]) for it in reader.items()})
    assert set(rec["metrics"]) == ({"ssim", "lpips", "fid", "kid"} if paired else {"fid", "kid"})
    assert rec["dataset"]["args"]["pairing"] == ("paired" if paired else "unpaired")
    assert rec["dataset"]["describe"]["persons"] == len(persons)
    want = direct_distribution(persons, folder, tmp, inception)
    for m in ("fid", "kid"):
        assert rec["metrics"][m]["value"] == pytest.approx(want[m], rel=1e-9, abs=1e-12), m
        assert rec["metrics"][m]["protocol"] == "catvton"
    assert rec["metrics"]["kid"]["scale"] == 1000
    if paired:
        inputs = TaskInputs(path.stem, task, get_protocol("catvton"), samples, reader)
        got = catvton_direct(inputs)
        for m in ("ssim", "lpips"):
            assert abs(rec["metrics"][m]["value"] - got[m]) < 1e-6, m
            assert rec["metrics"][m]["n"] == {"generated": len(persons)}
    return rec


@pytest.mark.slow
def test_vitonhd_paired_and_unpaired(tmp_path, inception_weights):
    root = write_vitonhd(tmp_path / "VITON-HD")
    made = tmp_path / "results"
    for i, pairing in enumerate(("paired", "unpaired")):  # IDM-VTON/CatVTON: <person>.jpg
        write_generated(made / pairing, [f"{p}.jpg" for p in VH_IDS], seed=10 + i)
    res = run_suite("vitonhd", f"vitonhd={root}", f"{made}/{{pairing}}", tmp_path / "run",
                    inception_weights)
    assert res.exit_code == 0, res.output
    tasks = load_suite(SUITES / "vitonhd.yaml").suite.tasks
    rec = check_record(tmp_path / "run" / "results" / "paired.json", VitonHD(root), tasks["paired"],
                       tmp_path, inception_weights, paired=True)
    check_record(tmp_path / "run" / "results" / "unpaired.json", VitonHD(root, "unpaired"),
                 tasks["unpaired"], tmp_path, inception_weights, paired=False)
    assert rec["model"]["args"]["adapter"]["match"] == "auto"
    # The report shows person | garment | result | ground truth for the paired task.
    build_report([tmp_path / "run"], tmp_path / "report", published=True)
    page = (tmp_path / "report" / "index.html").read_text()
    galleries = page.split("<h3>Samples</h3>")[1:]
    assert len(galleries) == 2
    heads = [g.split("</tr>")[0] for g in galleries]
    assert sum('<th scope="col">ground truth</th>' in h for h in heads) == 1
    assert all('<th scope="col">person</th>' in h and '<th scope="col">garment</th>' in h
               for h in heads)
    paired = next(g for g, h in zip(galleries, heads, strict=True) if "ground truth" in h)
    assert paired.split("</table>")[0].count("data:image/jpeg;base64,") == 4 * 5
    assert "IDM-VTON" in page and "CatVTON" in page  # published rows beside the measured one


@pytest.mark.slow
def test_dresscode_all_and_per_category(tmp_path, inception_weights):
    root = write_dresscode(tmp_path / "DressCode")
    made = tmp_path / "results"
    for i, pairing in enumerate(("paired", "unpaired")):  # one flat folder per category
        for cat, ids in DC_IDS.items():
            write_generated(made / pairing / cat, [f"{x}_0.jpg" for x in ids], seed=20 + i)
    tasks = ["paired", "unpaired", "paired-dresses", "unpaired-lower_body"]
    res = run_suite("dresscode", f"dresscode={root}", f"{made}/{{pairing}}/{{category}}",
                    tmp_path / "run", inception_weights, *[x for t in tasks for x in ("--task", t)])
    assert res.exit_code == 0, res.output
    spec = load_suite(SUITES / "dresscode.yaml").suite.tasks
    for name in tasks:
        args = spec[name].dataset.args
        reader = DressCode(root, category=args["category"], pairing=args["pairing"])
        rec = check_record(tmp_path / "run" / "results" / f"{name}.json", reader, spec[name],
                           tmp_path, inception_weights, paired=args["pairing"] == "paired")
        n = 8 if args["category"] == "all" else len(DC_IDS[args["category"]])
        assert rec["counts"]["scored"] == n


def _vitonhd(tmp: Path) -> tuple[Path, Path]:
    root = write_vitonhd(tmp / "VITON-HD")
    return root, write_generated(tmp / "made", [f"{p}.jpg" for p in VH_IDS])


def _break_missing_cloth(tmp):
    root, made = _vitonhd(tmp)
    shutil.rmtree(root / "test" / "cloth")
    return "vitonhd", root, made, "missing garment (cloth) folder"


def _break_missing_file(tmp):
    root, made = _vitonhd(tmp)
    (root / "test" / "image" / "00013_00.jpg").unlink()
    return "vitonhd", root, made, "1 person image(s) named in the pair file are not in"


def _break_escape(tmp):
    root, made = _vitonhd(tmp)
    (root / "test_pairs.txt").write_text("../../secret.jpg 00006_00.jpg\n")
    return "vitonhd", root, made, "escapes the dataset root"


def _break_garment_as_person(tmp):
    root = write_dresscode(tmp / "DressCode")
    made = write_generated(tmp / "made", [f"{x}_0.jpg" for ids in DC_IDS.values() for x in ids])
    with open(root / "dresses" / "test_pairs_paired.txt", "a") as f:
        f.write("020714_1.jpg 020714_1.jpg\n")
    return "dresscode", root, made, "garments (XXXXXX_1.jpg) must never enter the ground-truth"


def _break_missing_generated(tmp):
    root, made = _vitonhd(tmp)
    (made / "00008_00.jpg").unlink()
    return "vitonhd", root, made, "folder adapter: 1 of 5 images missing"


@pytest.mark.parametrize("broken", [_break_missing_cloth, _break_missing_file, _break_escape,
                                    _break_garment_as_person, _break_missing_generated])
def test_broken_layouts_stop_before_any_image(tmp_path, broken):
    suite, root, made, message = broken(tmp_path)
    # SSIM only: no weights file to resolve (missing weights are listed first: test_faults_input)
    res = invoke("run", SUITES / f"{suite}.yaml", "--model", "folder", "--model-arg",
                 f"path={made}", "--data", f"{suite}={root}", "--out", tmp_path / "run",
                 "--task", "paired", "--set", "tasks.paired.metrics={ssim: {}}")
    assert res.exit_code == 2 and message in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert not (tmp_path / "run" / "samples").exists()
