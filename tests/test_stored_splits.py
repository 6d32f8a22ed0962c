"""Splits of the published datasets built once, stored, and memory-mapped by every process and arm."""

import pickle

import datasets
import numpy as np
import pytest
from PIL import Image

from medrl_lib.config import load_profile, resolve_path
from medrl_lib.data import splits
from medrl_lib.ops import rehearsal


@pytest.fixture(scope="module")
def profile(tmp_path_factory):
    rehearsal.ensure_parts(resolve_path(rehearsal.ROOT))
    return load_profile("rehearsal", {"cache_dir": str(tmp_path_factory.mktemp("cache"))})


def test_stored_splits_equal_the_built_ones_and_are_built_once(profile, monkeypatch):
    train, test = splits.make_splits(profile)
    built_train, built_test = splits.build_splits(profile)
    assert train["id"] == built_train["id"] and test["id"] == built_test["id"]
    assert train.info.description == built_train.info.description  # the loaders' drop counts travel with them
    assert train.cache_files and test.cache_files  # memory-mapped Arrow files, not rows in this process's memory
    monkeypatch.setattr(splits, "build_splits", lambda p: pytest.fail("a stored split was built again"))
    again, _ = splits.make_splits(profile)
    assert again["id"] == train["id"] and again.cache_files == train.cache_files


def test_a_worker_gets_the_split_as_file_paths(profile):
    # the sharded evaluation hands each worker its share: pickled as paths, not as the images
    _, test = splits.make_splits(profile)
    in_memory = datasets.Dataset.from_list(list(test))
    assert len(pickle.dumps(test.select(range(4)))) < len(pickle.dumps(in_memory.select(range(4)))) / 5


def test_a_changed_data_setting_or_file_is_another_split(profile, tmp_path):
    # another seed, or a source file rewritten, must not read the stored split of the old one
    import shutil

    copy = tmp_path / "pmc-vqa"
    shutil.copytree(resolve_path(profile.data.pmc_vqa_path), copy)
    p = load_profile("rehearsal", {"data.pmc_vqa_path": str(copy), "cache_dir": profile.cache_dir})
    key = splits.split_key(p)
    assert splits.split_key(load_profile("rehearsal", {"data.pmc_vqa_path": str(copy), "data.seed": 1})) != key
    (copy / "train_2.csv").write_text((copy / "train_2.csv").read_text() + "\n")
    assert splits.split_key(p) != key


@pytest.mark.parametrize("width, height", [
    (300, 200),    # under the pixel cap
    (1200, 900),   # over it
])
def test_stored_images_give_the_policy_the_same_inputs(profile, width, height):
    from medrl_lib.training.train import load_policy

    _, processor = load_policy(profile, str(resolve_path(profile.model.instruct)))
    pixels = np.random.default_rng(0).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    original = Image.fromarray(pixels)
    ds = datasets.Dataset.from_dict({"image": [original]}).cast_column("image", datasets.Image())
    stored = splits.resize_images(ds, profile.model.max_pixels, "test")[0]["image"]
    text = "<|vision_start|><|image_pad|><|vision_end|>"
    a = processor(text=[text], images=[original], return_tensors="pt")
    b = processor(text=[text], images=[stored], return_tensors="pt")
    assert a["input_ids"].tolist() == b["input_ids"].tolist()
    assert (a["image_grid_thw"] == b["image_grid_thw"]).all() and (a["pixel_values"] == b["pixel_values"]).all()
