"""Alignment math (closed forms), preprocessing parity with open_clip/DINO transforms, settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffbench.errors import ConfigError, MetricInputError
from diffbench.features import clip as C
from diffbench.features import dino as D
from diffbench.metrics import alignment as A
from diffbench.protocols import dreambooth as P
from diffbench.registry import METRICS, PROTOCOLS
from diffbench.scoring.alignment import plan
from tests._dreambooth import smooth_image

R2 = 1 / math.sqrt(2)


def test_image_text_and_oracle_scores_closed_form():
    gen = np.array([[2.0, 0.0], [0.0, 3.0]])
    refs = np.array([[1.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(A.image_scores(gen, refs), [(1 + R2) / 2, R2 / 2], atol=1e-15)
    np.testing.assert_allclose(A.text_scores(gen, np.array([[1.0, 1.0], [0.0, -1.0]])),
                               [R2, -1.0], atol=1e-15)
    three = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # self-pairs excluded: (0 + R2)/2, (0 + R2)/2, (R2 + R2)/2
    np.testing.assert_allclose(A.oracle_scores(three), [R2 / 2, R2 / 2, R2], atol=1e-15)
    with pytest.raises(MetricInputError, match="at least 2 reference"):
        A.oracle_scores(three[:1])
    with pytest.raises(MetricInputError, match="zero or not finite"):
        A.image_scores(np.zeros((1, 2)), refs)


def test_averaging_modes():
    scores = np.array([1.0, 0.0, 0.0, 0.5])
    subjects = ["a", "b", "b", "b"]
    value, per = A.aggregate(scores, subjects, "subject")
    assert value == pytest.approx((1.0 + 0.5 / 3) / 2)
    assert per == {"a": {"value": 1.0, "n": 1}, "b": {"value": pytest.approx(0.5 / 3), "n": 3}}
    assert A.aggregate(scores, subjects, "image")[0] == pytest.approx(1.5 / 4)
    weights = np.array([6.0, 4.0, 4.0, 4.0])  # pairs behind each score (references per subject)
    assert A.aggregate(scores, subjects, "pair", weights)[0] == pytest.approx(8.0 / 18.0)
    with pytest.raises(MetricInputError, match="average"):
        A.aggregate(scores, subjects, "median")


def _images():
    rs = np.random.RandomState(3)
    # landscape, portrait, small (upsampled), odd sizes
    return [smooth_image(rs, s) for s in ((300, 200), (181, 257), (97, 130), (224, 224))]


def test_clip_preprocessing_equals_open_clip_transform():
    import open_clip

    ours = D.Preprocess(224, 224, "shortest", "bicubic", C.OPENAI_MEAN, C.OPENAI_STD)
    ref = open_clip.image_transform(224, is_train=False, mean=C.OPENAI_MEAN, std=C.OPENAI_STD,
                                    resize_mode="shortest", interpolation="bicubic")
    squash = D.Preprocess(224, None, "squash", "bicubic", C.SIGLIP_MEAN, C.SIGLIP_STD)
    ref_squash = open_clip.image_transform(224, is_train=False, mean=C.SIGLIP_MEAN,
                                           std=C.SIGLIP_STD, resize_mode="squash",
                                           interpolation="bicubic")
    for img in _images():
        arr = np.asarray(img)
        assert torch.equal(ours(arr), ref(img))
        assert torch.equal(squash(arr), ref_squash(img))


def test_dino_preprocessing_equals_official_eval_transform():
    from torchvision import transforms as T

    ref = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                     T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    ours = D.Preprocess(256, 224)
    for img in _images():
        out = ours(np.asarray(img))
        assert out.shape == (3, 224, 224) and torch.equal(out, ref(img))


def test_protocol_constants_match_extractors():
    assert P.IMAGENET_MEAN == D.IMAGENET_MEAN and P.IMAGENET_STD == D.IMAGENET_STD
    assert P.OPENAI_MEAN == C.OPENAI_MEAN and P.OPENAI_STD == C.OPENAI_STD
    assert P.SIGLIP_MEAN == C.SIGLIP_MEAN and P.SIGLIP_STD == C.SIGLIP_STD
    proto = PROTOCOLS.get("dreambench")
    assert proto.params["clip_i"]["model"] == "ViT-B-32-quickgelu"
    assert proto.params["dino"]["arch"] == "vit_small_patch16_224.dino"
    assert set(PROTOCOLS.get("dco").metrics) >= {"dinov2", "siglip_i", "siglip_t"}
    for name in ("dino", "clip_i", "clip_t", "dinov2", "siglip_i", "siglip_t"):
        spec = METRICS.get(name)
        assert spec.family == "alignment" and spec.higher_is_better is True


def test_plan_shares_extractors_and_checks_arguments():
    proto = PROTOCOLS.get("dreambench")
    pi, pt = plan("clip_i", proto.param("clip_i")), plan("clip_t", proto.param("clip_t"))
    assert pi.spec == pt.spec and pi.against == "references" and pt.against == "text"
    assert pt.text == "base_prompt" and pi.scale == 100.0 and pi.average == "subject"
    assert plan("dino", proto.param("dino")).spec != pi.spec
    with pytest.raises(ConfigError, match="resolution: unknown argument"):
        plan("dino", {**proto.param("dino"), "resolution": 512})
    with pytest.raises(ConfigError, match="average"):
        plan("dino", {**proto.param("dino"), "average": "median"})
    with pytest.raises(ConfigError, match="text: must be one of base_prompt, prompt, context, got 'caption'"):
        plan("clip_t", {**proto.param("clip_t"), "text": "caption"})
    with pytest.raises(ConfigError, match="personalization protocol"):
        plan("dino", PROTOCOLS.get("adm").param("dino"))


def test_quickgelu_pitfall_is_refused():
    with pytest.raises(ConfigError, match="QuickGELU; use 'ViT-B-32-quickgelu'"):
        C.ClipExtractor("unused.pt", model="ViT-B-32", weights_name="clip-vit-b-32-openai")
    with pytest.raises(ConfigError, match="no model config 'ViT-B-23'"):
        C.ClipExtractor("unused.pt", model="ViT-B-23")
