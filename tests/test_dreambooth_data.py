"""The DreamBench reader: prompts file parsing, items, conditions, keys and clear errors."""

from __future__ import annotations

import pytest

from diffbench.data.dreambooth import DreamBoothDataset, parse_prompts_file
from diffbench.errors import ConfigError, DataError
from diffbench.refdata import open_dataset
from diffbench.requests import task_requests
from diffbench.suite import default_suites_dir, load_suite
from tests._dreambooth import prompts_text, write_dataset


@pytest.fixture
def root(tmp_path):
    return write_dataset(tmp_path / "dataset")


def test_parse_real_format(root):
    pf = parse_prompts_file(root / "prompts_and_classes.txt")
    assert pf.classes == {"dog": "dog", "can": "can"}
    assert pf.templates["object"] == ["a {0} {1} in the jungle",
                                      "a {0} {1} with a city in the background", "a red {0} {1}"]
    assert pf.templates["live"][1] == "a {0} {1} wearing a red hat"
    assert len(pf.sha256) == 64


def test_items_conditions_and_refs(root):
    ds = DreamBoothDataset(root)
    items = ds.items()
    assert [i.key for i in items] == ["dog-p00", "dog-p01", "dog-p02",
                                      "can-p00", "can-p01", "can-p02"]
    dog, can = items[1], items[5]
    # live subjects (dog) get the live list, objects the object list
    assert dog.condition == {"prompt": "a sks dog wearing a red hat",
                             "base_prompt": "a dog wearing a red hat", "subject": "dog",
                             "class": "dog", "token": "sks"}
    assert can.condition["prompt"] == "a red sks can"
    assert can.condition["base_prompt"] == "a red can"
    assert dog.refs["text"] == "a dog wearing a red hat"
    assert dog.refs["context"] == "a wearing a red hat"
    assert [p.rsplit("/", 2)[-2:] for p in dog.refs["images"]] == [
        ["dog", "00.jpg"], ["dog", "01.jpg"], ["dog", "02.jpg"]]
    assert ds.reference_images() is None
    desc = ds.describe()
    assert desc["subjects"] == 2 and desc["reference_images"] == 5 and desc["token"] == "sks"


def test_learned_token_subset_and_prompt_selection(root):
    ds = DreamBoothDataset(root, token="<dog>", subjects="dog", prompts=[2, 0], with_class=False)
    items = ds.items()
    assert [i.key for i in items] == ["dog-p02", "dog-p00"]
    assert items[0].condition["prompt"] == "a red <dog>"
    assert items[1].condition["prompt"] == "a <dog> in the snow"
    assert items[1].condition["base_prompt"] == "a dog in the snow"
    obj = DreamBoothDataset(root, subjects=["dog"], prompt_set="object").items()
    assert obj[0].condition["prompt"] == "a sks dog in the jungle"


def test_requests_have_per_image_keys_and_seeds(root):
    task = load_suite(default_suites_dir() / "dreambooth.yaml").suite.tasks["dreambench"]
    reqs = task_requests(task, items=DreamBoothDataset(root).items())
    assert len(reqs) == 6 * 4
    keys = [r.key for r in reqs]
    assert "dog-p01-3" in keys and len({r.seed for r in reqs}) == len(reqs)
    req = next(r for r in reqs if r.key == "can-p00-0")
    assert req.item == "can-p00" and req.condition["prompt"] == "a sks can in the jungle"
    assert req.sampler == {"steps": 50, "guidance_scale": 7.5}


def test_open_dataset_by_location(root):
    ds = open_dataset("dreambooth", "dreambooth", {"token": "zwx"}, {"dreambooth": str(root)})
    assert ds.items()[0].condition["prompt"] == "a zwx dog in the snow"


@pytest.mark.parametrize("text, match", [
    ("Classes\n\nsubject_name,class\ndog\n", r":4: class table row 'dog'"),
    ("subject_name,class\ndog,dog\nObject Prompts\nprompt_list = [\n'a {0} {1} x'.format(unique_token, "
     "class_token),\n", "not closed"),
    ("subject_name,class\ndog,dog\nObject Prompts\nprompt_list = [\n'a {0} x'.format(unique_token, "
     "class_token)\n]\n", r":5: .*lacks the \{0\} \(token\) or \{1\} \(class\)"),
    ("subject_name,class\ndog,dog\nObject Prompts\nprompt_list = [\nprint('hi'),\n]\n",
     r":5: cannot read prompt entry"),
    ("subject_name,class\ndog,dog\nObject Prompts\nprompt_list = [\n'a {0} {1}'.format(unique_token, "
     "class_token)\n]\n", "no live prompt list"),
    ("Object Prompts\nprompt_list = [\n]\n", "no 'subject_name,class' table"),
    ("subject_name,class\ndog,dog\nprompt_list = [\n", "without an 'Object Prompts'"),
])
def test_malformed_prompts_file(tmp_path, text, match):
    (tmp_path / "prompts_and_classes.txt").write_text(text)
    with pytest.raises(DataError, match=match):
        DreamBoothDataset(tmp_path)


def test_missing_pieces_are_clear(tmp_path, root):
    with pytest.raises(DataError, match="not found; point the dreambooth location"):
        DreamBoothDataset(tmp_path)
    with pytest.raises(DataError, match="is not a folder"):
        DreamBoothDataset(tmp_path / "nope")
    for f in (root / "can").iterdir():
        f.unlink()
    (root / "can" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"can has no images"):
        DreamBoothDataset(root)
    (root / "can" / "notes.txt").unlink()
    (root / "can").rmdir()
    with pytest.raises(DataError, match="listed in prompts_and_classes.txt but"):
        DreamBoothDataset(root)
    assert len(DreamBoothDataset(root, subjects=["dog"]).items()) == 3


def test_bad_arguments(root):
    with pytest.raises(ConfigError, match="did you mean dog"):
        DreamBoothDataset(root, subjects=["dgo"])
    with pytest.raises(ConfigError, match="indices must be distinct and in 0..2"):
        DreamBoothDataset(root, prompts=[3])
    with pytest.raises(ConfigError, match="prompt_set"):
        DreamBoothDataset(root, prompt_set="people")
    with pytest.raises(ConfigError, match="token"):
        DreamBoothDataset(root, token=" ")


def test_subject_folder_cannot_escape_root(tmp_path):
    (tmp_path / "prompts_and_classes.txt").write_text(prompts_text({"../x": "dog"}))
    with pytest.raises(DataError, match="escapes the dataset root"):
        DreamBoothDataset(tmp_path)
