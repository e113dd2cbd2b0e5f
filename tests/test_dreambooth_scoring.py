"""The alignment family end to end on a tiny DreamBench: equal to a direct open_clip/timm computation.

Random-weight CLIP (open_clip ViT-B-32-quickgelu) and DINO (timm ViT-S/16) are saved to files;
diffbench (batched, loader workers, shared image pass) and the reference code (one image at a
time, open_clip's own transform and the official DINO eval transform) both load them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffbench.adapters.folder import FolderAdapter
from diffbench.data.base import Item
from diffbench.data.dreambooth import DreamBoothDataset
from diffbench.data.samples import SampleSet
from diffbench.errors import DataError
from diffbench.generate import generate, merge_manifests
from diffbench.protocols import get_protocol
from diffbench.requests import task_requests
from diffbench.scoring import EvalContext, TaskInputs, evaluate_task
from diffbench.scoring.alignment import extractor_of, oracle, plan
from diffbench.suite import default_suites_dir, load_suite
from tests._dreambooth import (
    direct,
    expected,
    make_timm_weights,
    weights,
    write_dataset,
    write_generated,
)

pytestmark = pytest.mark.slow
TOL = 1e-6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Dataset (dog: 3 refs, can: 2), 2 prompts × 2 images per subject, scored by diffbench."""
    tmp = tmp_path_factory.mktemp("dreambench")
    root = write_dataset(tmp / "dataset")
    loaded = load_suite(default_suites_dir() / "dreambooth.yaml", [
        "tasks.dreambench.generation.images_per_condition=2",
        "tasks.dreambench.dataset.args.prompts=[0, 2]"])
    task = loaded.suite.tasks["dreambench"]
    ds = DreamBoothDataset(root, **task.dataset.args)
    reqs = task_requests(task, items=ds.items())
    made = write_generated(tmp / "made", [r.key for r in reqs])
    generate(FolderAdapter(str(made)), reqs, tmp / "samples", 3, progress=False)
    merge_manifests(tmp / "samples")
    inputs = TaskInputs("dreambench", task, get_protocol("dreambench"), SampleSet(tmp / "samples"),
                        ds)
    ctx = EvalContext(batch_size=5, workers=1, bootstrap=20, weights=weights())
    result = evaluate_task(inputs, ctx)
    refs = {s: ds.reference_paths(s) for s in ds.subjects}
    return {"inputs": inputs, "ctx": ctx, "result": result, "ds": ds, "refs": refs}


def test_scores_equal_direct_computation(world):
    want = expected(world["inputs"].samples, world["refs"])
    for metric in ("dino", "clip_i", "clip_t"):
        entry = world["result"].metrics[metric]
        assert abs(entry["value"] - want[metric]["value"]) < TOL, metric
        for subject, value in want[metric]["subjects"].items():
            got = entry["details"]["subjects"][subject]
            assert abs(got["value"] - value) < TOL, (metric, subject)
            assert got["n"] == 4 and got["n_references"] == len(world["refs"][subject])
        assert entry["n"] == {"generated": 8, "references": 5, "subjects": 2}
        assert entry["scale"] == 100.0 and entry["protocol"] == "dreambench"
        assert entry["higher_is_better"] is True
        ci = entry["ci"]
        assert ci["low"] <= ci["high"] and "subjects" in ci["method"]


def test_extractor_sharing_and_fingerprints(world):
    metrics = world["result"].metrics
    assert metrics["clip_t"]["details"]["text"] == "base_prompt"
    # CLIP-I and CLIP-T share one extractor; DINO has its own
    assert metrics["clip_t"]["extractor"] == metrics["clip_i"]["extractor"]
    assert metrics["clip_t"]["extractor"] != metrics["dino"]["extractor"]
    assert set(world["result"].extractors) == {"clip-vit-b-32-openai", "dino-vits16"}
    fp = world["result"].extractors["clip-vit-b-32-openai"]
    assert fp["quick_gelu"] is True and fp["preprocess"]["resize"] == 224
    assert world["result"].extractors["dino-vits16"]["preprocess"]["resize"] == 256
    assert world["result"].counts == {"scored": 8}
    assert world["result"].references["subject_images"]["n"] == 5


def test_oracle_equals_direct_computation(world):
    emb = direct().image
    out = oracle(["dino", "clip_i", "clip_t"], world["inputs"], world["ctx"])
    assert "clip_t" not in out.metrics and "clip_t" in out.notes[0]
    for net, metric in (("dino", "dino"), ("clip", "clip_i")):
        per_subject = []
        for subject in ("dog", "can"):
            refs = world["ds"].reference_paths(subject)
            pairs = [emb(a)[net] @ emb(b)[net] for a in refs for b in refs if a != b]
            per_subject.append(np.mean(pairs))
        entry = out.metrics[metric]
        assert abs(entry["value"] - np.mean(per_subject)) < TOL
        assert entry["details"]["oracle"] is True and entry["n"]["references"] == 5


def test_extractors_are_reused_across_sweep_points(world):
    proto, ctx = world["inputs"].protocol, world["ctx"]
    spec = plan("clip_i", proto.param("clip_i")).spec
    assert extractor_of(spec, ctx) is extractor_of(spec, ctx)


def test_items_without_subject_refs_are_refused(world):
    class Plain:
        def items(self):
            return [Item(it.key, it.condition, {}) for it in world["ds"].items()]

    inputs = TaskInputs("t", world["inputs"].task, world["inputs"].protocol,
                        world["inputs"].samples, Plain())
    with pytest.raises(DataError, match="need a personalization reader such as dreambooth"):
        evaluate_task(inputs, world["ctx"])


def test_dinov2_official_checkpoint_layout_loads_like_timm(tmp_path):
    """DINOv2's released layout (518² pos_embed, mask_token) → timm at 224, as timm loads it."""
    import timm

    from diffbench.features.dino import DinoExtractor

    path = make_timm_weights(tmp_path / "v2.pth", "vit_small_patch14_dinov2.lvd142m")
    state = torch.load(path, weights_only=True)
    state["mask_token"] = torch.zeros(1, 384)
    torch.save(state, path)
    ours = DinoExtractor(path, arch="vit_small_patch14_dinov2.lvd142m", name="dinov2-vits14")
    ref = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=True, num_classes=0,
                            img_size=224, pretrained_cfg_overlay={"file": str(path)}).eval()
    rs = np.random.RandomState(0)
    batch = torch.stack([ours.preprocess(rs.randint(0, 256, (120, 90, 3), dtype=np.uint8))
                         for _ in range(2)])
    with torch.no_grad():
        expected = ref(batch)
    assert torch.allclose(ours.forward(batch)["cls"], expected, atol=1e-5, rtol=0)


def test_openai_torchscript_archive_loads(tmp_path):
    """OpenAI ships CLIP as TorchScript archives; their tensors load into open_clip's model."""
    import open_clip

    from diffbench.features.clip import ClipExtractor, is_torchscript

    torch.manual_seed(0)
    net = open_clip.create_model("ViT-S-32", pretrained=None).eval()
    torch.jit.save(torch.jit.script(net), str(tmp_path / "ViT-S-32.pt"))
    assert is_torchscript(tmp_path / "ViT-S-32.pt")
    ours = ClipExtractor(tmp_path / "ViT-S-32.pt", model="ViT-S-32", name="s32")
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = net.encode_image(x)
    assert torch.allclose(ours.forward(x)["embed"], expected, atol=1e-5, rtol=0)
