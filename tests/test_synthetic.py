"""Tests of the common schema (medrl_lib.data.schema) and the synthetic generator (medrl_lib.data.synthetic)."""

from __future__ import annotations

import json
import re
from typing import Any

import datasets
import numpy as np
import pytest

from medrl_lib.data.schema import (
    FEATURES,
    LETTERS,
    MODALITIES,
    DataError,
    index_of,
    letter_of,
    validate_rows,
)
from medrl_lib.data.synthetic import (
    OPTION_POOLS,
    QUESTIONS,
    SyntheticConfig,
    answer_text,
    describe,
    generate,
    make_split,
)

N_PER_MODALITY = 60
SIZE = 56


@pytest.fixture(scope="module")
def split() -> datasets.Dataset:
    """Items of all three modalities and all question types."""
    return make_split(N_PER_MODALITY, MODALITIES, seed=3, image_size=SIZE, id_prefix="test")


@pytest.fixture(scope="module")
def rows(split: datasets.Dataset) -> list[dict[str, Any]]:
    """The rows of ``split`` with decoded facts and images as 2-D uint8 arrays (one channel)."""
    out = []
    for row in split:
        row = dict(row)
        row["facts"] = json.loads(row["facts"])
        row["pixels"] = np.asarray(row["image"])[:, :, 0]
        out.append(row)
    return out


def png_bytes(ds: datasets.Dataset) -> list[bytes]:
    """The stored PNG bytes of every image of ``ds``, without decoding."""
    return [image["bytes"] for image in ds.cast_column("image", datasets.Image(decode=False))["image"]]


def text_columns(ds: datasets.Dataset) -> dict[str, list[Any]]:
    """Every column of ``ds`` but the image."""
    return ds.remove_columns("image").to_dict()


# ----------------------------------------------------------------------------------------------------------------------
# determinism


def test_same_config_gives_identical_datasets() -> None:
    cfg = dict(n_items=40, modalities=MODALITIES, seed=11)
    a, b = generate(SyntheticConfig(**cfg)), generate(SyntheticConfig(**cfg))
    assert text_columns(a) == text_columns(b)
    assert png_bytes(a) == png_bytes(b)


@pytest.mark.parametrize(
    "changes",
    [
        {"seed": 12},  # another seed: other ids, other images
        {"id_prefix": "other"},  # same seed, another prefix: the prefix is mixed into the seed
    ],
)
def test_other_seed_or_prefix_gives_disjoint_datasets(changes: dict[str, Any]) -> None:
    base = dict(n_items=40, modalities=MODALITIES, seed=11, id_prefix="syn")
    a, b = generate(SyntheticConfig(**base)), generate(SyntheticConfig(**{**base, **changes}))
    assert not set(a["id"]) & set(b["id"])
    assert not set(png_bytes(a)) & set(png_bytes(b))


def test_ids_follow_prefix_seed_index(split: datasets.Dataset) -> None:
    assert split["id"] == [f"test-3-{i:06d}" for i in range(len(split))]


# ----------------------------------------------------------------------------------------------------------------------
# schema


def test_features_and_validation(split: datasets.Dataset) -> None:
    assert split.features == FEATURES
    assert list(split.column_names) == list(FEATURES)
    validate_rows(split, "split")
    validate_rows(split.shuffle(seed=0), "shuffled split")


def test_make_split_spreads_items_evenly(split: datasets.Dataset) -> None:
    assert len(split) == N_PER_MODALITY * len(MODALITIES)
    for modality in MODALITIES:
        assert split["modality"].count(modality) == N_PER_MODALITY
    assert set(split["source"]) == {"synthetic"}


@pytest.mark.parametrize(
    "min_options, max_options",
    [
        (2, 6),  # the default range; the "side" and "size" pools cap it at 5 and 4
        (4, 4),  # a fixed count every pool can fill
        (2, 2),  # the fewest options
        (3, 5),  # a middle range
    ],
)
def test_option_counts_and_letters(min_options: int, max_options: int) -> None:
    ds = generate(SyntheticConfig(n_items=100, modalities=MODALITIES, min_options=min_options, max_options=max_options))
    for options, answer, facts in zip(ds["options"], ds["answer"], ds["facts"]):
        pool = OPTION_POOLS[json.loads(facts)["question_type"]]
        assert min_options <= len(options) <= min(max_options, len(pool))
        assert len(set(options)) == len(options)
        assert set(options) <= set(pool)
        assert answer in LETTERS[: len(options)]
    validate_rows(ds, "options")


def test_gold_letter_and_option_count_vary(split: datasets.Dataset) -> None:
    assert set(split["answer"]) == set(LETTERS)
    assert {len(options) for options in split["options"]} == {2, 3, 4, 5, 6}


def test_all_question_types_are_used(rows: list[dict[str, Any]]) -> None:
    for modality in MODALITIES:
        types = [row["facts"]["question_type"] for row in rows if row["modality"] == modality]
        assert set(types) == set(QUESTIONS)


# ----------------------------------------------------------------------------------------------------------------------
# answers are determined by the facts, and the facts by the geometry

NUMBERS = {1: "one", 2: "two", 3: "three"}


def expected_answer(facts: dict[str, Any]) -> str:
    """Recompute the correct option text from the facts, independently of the generator."""
    lesions = facts["lesions"]
    return {
        "location": lambda: lesions[0]["quadrant"],
        "count": lambda: NUMBERS[len(lesions)],
        "side": lambda: lesions[0]["side"],
        "modality": lambda: facts["modality"],
        "size": lambda: lesions[0]["size"],
    }[facts["question_type"]]()


def test_gold_option_matches_facts(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        facts = row["facts"]
        assert facts["modality"] == row["modality"]
        assert answer_text(row) == expected_answer(facts), row["id"]
        assert row["options"].count(answer_text(row)) == 1


def test_question_texts(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        qtype = row["facts"]["question_type"]
        assert row["question"] == QUESTIONS[qtype].format(modality=row["modality"])
        if qtype == "modality":
            # the question must not leak the answer
            assert row["answer"] == letter_of(row["options"].index(row["modality"]))
            assert not any(m in row["question"] for m in MODALITIES)


def test_lesion_geometry_is_consistent(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        facts = row["facts"]
        lesions = facts["lesions"]
        assert facts["n_lesions"] == len(lesions)
        if facts["question_type"] in ("location", "side", "size"):
            assert len(lesions) == 1  # "the lesion" must be unique
        else:
            assert 1 <= len(lesions) <= 3
        for lesion in lesions:
            (x, y), r = lesion["center"], lesion["radius"]
            # strictly inside its quadrant: the whole disc clears both midlines
            assert abs(x - 0.5) > r and abs(y - 0.5) > r
            vertical = "upper" if y < 0.5 else "lower"
            side = "left" if x < 0.5 else "right"  # the image's left and right
            assert lesion["quadrant"] == f"{vertical} {side}"
            assert lesion["side"] == side
            assert lesion["size"] == ("small" if r < 0.065 else "large")
        for i, a in enumerate(lesions):  # no two lesions overlap
            for b in lesions[i + 1 :]:
                gap = np.hypot(a["center"][0] - b["center"][0], a["center"][1] - b["center"][1])
                assert gap > a["radius"] + b["radius"]


def test_describe(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        facts = row["facts"]
        text = describe(facts)
        assert text == describe(facts)
        assert text.startswith(f"{row['modality']} image showing {NUMBERS[len(facts['lesions'])]} ")
        for lesion in facts["lesions"]:
            assert f"a {lesion['size']} lesion in the {lesion['quadrant']}" in text


# ----------------------------------------------------------------------------------------------------------------------
# the images


def test_images_are_rgb_grayscale(split: datasets.Dataset) -> None:
    for image in split.select(range(0, len(split), 30))["image"]:
        assert image.mode == "RGB" and image.size == (SIZE, SIZE)
        pixels = np.asarray(image)
        assert (pixels[:, :, 0] == pixels[:, :, 1]).all() and (pixels[:, :, 0] == pixels[:, :, 2]).all()


@pytest.mark.parametrize("size", [28, 112])  # the smallest size, and a larger one
def test_other_image_sizes(size: int) -> None:
    ds = generate(SyntheticConfig(n_items=15, modalities=MODALITIES, image_size=size))
    assert {image.size for image in ds["image"]} == {(size, size)}
    validate_rows(ds, f"size {size}")


def test_modalities_look_different(rows: list[dict[str, Any]]) -> None:
    corner: dict[str, list[float]] = {m: [] for m in MODALITIES}
    for row in rows:
        pixels = row["pixels"]
        corner[row["modality"]].append(float(np.mean([pixels[:4, :4], pixels[-4:, -4:]])))
    # MRI and CT lie on a dark background, the chest radiograph fills the image with bright tissue
    assert max(corner["MRI"]) < 40 and max(corner["CT"]) < 40
    assert min(corner["X-ray"]) > 150


@pytest.mark.parametrize(
    "modality, sign",
    [
        ("MRI", +1),  # hyperintense lesions
        ("CT", -1),  # hypodense lesions
        ("X-ray", +1),  # bright opacities in dark lungs
    ],
)
def test_lesion_contrast(rows: list[dict[str, Any]], modality: str, sign: int) -> None:
    grid = (np.arange(SIZE) + 0.5) / SIZE
    xx, yy = np.meshgrid(grid, grid)
    for row in (row for row in rows if row["modality"] == modality):
        for lesion in row["facts"]["lesions"]:
            (x, y), r = lesion["center"], lesion["radius"]
            dist = np.hypot(xx - x, yy - y) * SIZE  # in pixels
            inner = row["pixels"][dist <= 0.5 * r * SIZE].mean()
            ring = row["pixels"][(dist >= r * SIZE + 1) & (dist <= r * SIZE + 2)].mean()
            assert sign * (inner - ring) > 30, (row["id"], inner, ring)


# ----------------------------------------------------------------------------------------------------------------------
# validate_rows catches bad rows


def good_row(row_id: str) -> dict[str, Any]:
    """A row that satisfies the schema."""
    return {
        "id": row_id,
        "image": np.zeros((28, 28, 3), dtype=np.uint8),
        "question": "Is the lesion small or large?",
        "options": ["small", "large"],
        "answer": "B",
        "modality": "CT",
        "source": "test",
        "facts": "{}",
        "image_path": f"{row_id}.png",
    }


@pytest.mark.parametrize(
    "change, field",
    [
        ({"answer": "C"}, "answer"),  # gold letter beyond the two options
        ({"answer": "b"}, "answer"),  # not an option letter
        ({"answer": None}, "answer"),  # no gold letter
        ({"options": []}, "options"),  # empty options
        ({"options": ["only"], "answer": "A"}, "options"),  # a single option
        ({"options": list("abcdefg")}, "options"),  # more options than letters
        ({"image": None}, "image"),  # missing image
        ({"modality": "PET"}, "modality"),  # unknown modality
        ({"id": "row-0"}, "id"),  # duplicate of the first row's id
    ],
)
def test_validate_rows_catches(change: dict[str, Any], field: str) -> None:
    rows = [good_row("row-0"), {**good_row("row-1"), **change}, good_row("row-2")]
    ds = datasets.Dataset.from_list(rows, features=FEATURES)
    bad_id = rows[1]["id"]
    with pytest.raises(DataError, match=re.escape(f"'{bad_id}'")) as caught:
        validate_rows(ds, "bad.csv")
    message = str(caught.value)
    assert "bad.csv" in message and f"'{field}'" in message
    # the check follows index mappings: without the bad row, the dataset passes
    validate_rows(ds.select([2, 0]), "bad.csv")


def test_validate_rows_names_missing_columns() -> None:
    ds = datasets.Dataset.from_list([good_row("row-0")], features=FEATURES).remove_columns("modality")
    with pytest.raises(DataError, match="modality"):
        validate_rows(ds, "bad.csv")


# ----------------------------------------------------------------------------------------------------------------------
# letters and configuration


def test_letters_round_trip() -> None:
    assert [index_of(letter_of(i)) for i in range(len(LETTERS))] == list(range(len(LETTERS)))
    with pytest.raises(ValueError):
        letter_of(len(LETTERS))
    with pytest.raises(ValueError):
        index_of("G")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"image_size": 50}, "image_size"),  # not a multiple of 28
        ({"image_size": 0}, "image_size"),  # not positive
        ({"min_options": 5, "max_options": 3}, "min_options"),  # empty range
        ({"min_options": 1}, "min_options"),  # fewer than two options
        ({"max_options": 7}, "max_options"),  # more options than letters
        ({"min_options": 5, "question_types": ("size",)}, "min_options"),  # the size pool has only 4 texts
        ({"modalities": ("PET",)}, "modalities"),  # unknown modality
        ({"modalities": ()}, "modalities"),  # no modality
        ({"question_types": ("colour",)}, "question_types"),  # unknown question type
        ({"n_items": 0}, "n_items"),  # nothing to generate
        ({"seed": -1}, "seed"),  # numpy seeds are non-negative
        ({"id_prefix": ""}, "id_prefix"),  # ids need a prefix
        ({"option_order": "sorted"}, "option_order"),  # unknown order
    ],
)
def test_config_errors(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SyntheticConfig(**{"n_items": 10, **kwargs})


def test_canonical_order_lists_options_in_pool_order() -> None:
    shuffled = generate(SyntheticConfig(n_items=60, seed=3))
    canonical = generate(SyntheticConfig(n_items=60, seed=3, option_order="canonical"))
    for s_row, c_row in zip(shuffled, canonical):
        qtype = json.loads(c_row["facts"])["question_type"]
        pool = OPTION_POOLS[qtype]
        assert c_row["options"] == sorted(s_row["options"], key=pool.index)  # same options, pool order
        assert answer_text(c_row) == answer_text(s_row)  # the gold letter follows its text
        assert c_row["image"] == s_row["image"]  # only the option order differs
    # shuffled options put the gold letter anywhere; in pool order "small" is always A when it is the answer
    sizes = [r for r in canonical if json.loads(r["facts"])["question_type"] == "size" and answer_text(r) == "small"]
    assert sizes and all(r["answer"] == "A" for r in sizes)


@pytest.mark.parametrize(
    "types, fraction, expected_plain",
    [
        ((), 0.7, 0),  # no type named: every item keeps the reasoning target
        (("count",), 0.0, 0),  # fraction 0: none
        (("count",), 1.0, 20),  # every count item (round-robin: 20 of 100)
        (("count", "size"), 1.0, 40),  # two types
    ],
)
def test_plain_answer_targets(types: tuple[str, ...], fraction: float, expected_plain: int) -> None:
    from medrl_lib.training.standins import mark_plain_answers
    from medrl_lib.training.train import with_prompts

    ds = mark_plain_answers(generate(SyntheticConfig(n_items=100)), types, fraction, seed=0)
    assert sum(ds["plain_answer"]) == expected_plain
    rows = with_prompts(ds, target="reasoning")
    for row in rows:
        target = row["completion"][0]["content"]
        if row["plain_answer"]:
            assert target == row["answer"]  # the bare letter, no tags
            assert json.loads(row["facts"])["question_type"] in types
        else:
            assert target.startswith("<think>") and target.endswith(f"<answer>{row['answer']}</answer>")
        assert "Your task: 1. Think" in row["prompt"][0]["content"]  # the reasoning prompt either way


def test_plain_fraction_is_roughly_kept() -> None:
    from medrl_lib.training.standins import mark_plain_answers

    ds = mark_plain_answers(generate(SyntheticConfig(n_items=500)), ("count",), 0.7, seed=0)
    assert 0.55 < sum(ds["plain_answer"]) / 100 < 0.85  # 100 count items, about 70 of them plain


@pytest.mark.parametrize(
    "fraction, low, high",
    [
        (0.0, 0, 0),      # never asked the plain prompt: every item keeps the reasoning prompt
        (0.25, 35, 65),   # about a quarter of 200
        (1.0, 200, 200),  # every item
    ],
)
def test_plain_prompt_items_are_asked_the_plain_prompt_and_answer_the_letter(fraction, low, high) -> None:
    from medrl_lib.training.standins import mark_plain_answers, mark_plain_prompts
    from medrl_lib.training.train import with_prompts

    ds = mark_plain_answers(generate(SyntheticConfig(n_items=200)), ("count",), 1.0, seed=0)
    ds = mark_plain_prompts(ds, fraction, seed=0)
    assert low <= sum(ds["plain_prompt"]) <= high
    for row in with_prompts(ds, target="reasoning"):
        prompt, target = row["prompt"][0]["content"], row["completion"][0]["content"]
        if row["plain_prompt"]:  # the papers' plain prompt, answered with the bare letter
            assert "provide the correct single-letter choice" in prompt and target == row["answer"]
        else:
            assert "Your task: 1. Think" in prompt


def test_the_instruct_stand_in_is_keyed_by_its_plain_prompt_share(tmp_path) -> None:
    from medrl_lib.training import standins
    from medrl_lib.config import load_profile

    base = tmp_path / "tiny-base-x"
    never = standins._instruct_settings(load_profile("smoke"), base, 0)
    asked = standins._instruct_settings(load_profile("smoke", {"standins.instruct.plain_prompt_fraction": 0.25}), base, 0)
    assert "plain_prompt" not in never  # the stand-ins built before the setting keep their keys
    assert asked["plain_prompt"] == 0.25
