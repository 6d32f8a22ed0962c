"""The data files of medrl_lib.data.fixtures: the loaders drop exactly what was planted, and the paper splits
draw from what survives."""

import csv
import json
import re
import time
import zipfile
from collections import Counter

import pytest

from medrl_lib.data import fixtures, huatuo, pmc_vqa
from medrl_lib.data.huatuo import load_huatuo_eval
from medrl_lib.data.pmc_vqa import load_pmc_vqa
from medrl_lib.data.schema import MODALITIES, format_drops, load_summary, validate_rows
from medrl_lib.data.splits import image_keys, medvlm_r1_published_split, zhu_split

N_DROPPED = len(pmc_vqa.DROP_REASONS) - 1  # one row per drop reason; the unknown-modality row is kept as "other"
N_PER_MODALITY = 12  # good rows per modality of each PMC-VQA file
# one good row in three is a second question on a figure (see medrl_lib.data.fixtures)
N_SECOND_QUESTIONS = len(MODALITIES) * (N_PER_MODALITY // 3)


def timed_write(tmp_path_factory, name, write, **kwargs):
    """Write the fixture files with ``write`` into a fresh folder: ``(folder, planted, seconds taken)``."""
    folder = tmp_path_factory.mktemp(name)
    start = time.perf_counter()
    planted = write(folder, **kwargs)
    return folder, planted, time.perf_counter() - start


@pytest.fixture(scope="module")
def pmc(tmp_path_factory):
    return timed_write(tmp_path_factory, "pmc", fixtures.write_pmc_vqa, n_per_modality=N_PER_MODALITY)


@pytest.fixture(scope="module")
def hua(tmp_path_factory):
    return timed_write(tmp_path_factory, "huatuo", fixtures.write_huatuo_eval)


def load_pmc(folder, csv_name):
    with pytest.warns(UserWarning, match=rf"{csv_name}: dropped {N_DROPPED} of"):
        return load_pmc_vqa(str(folder), csv=csv_name)


def test_pmc_vqa_files_in_the_published_layout(pmc):
    folder, planted, seconds = pmc
    assert seconds < 5
    assert sorted(p.rsplit("/", 1)[-1] for p in planted["files"]) == ["images_2.zip", "test_2.csv", "train_2.csv"]
    with open(folder / "train_2.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(fixtures.PMC_HEADER)
    n_shared = len(MODALITIES) * fixtures.PMC_SHARED_FIGURES
    assert len(rows) == planted["rows"]["train_2.csv"] == (
        len(MODALITIES) * N_PER_MODALITY + len(fixtures.PMC_KEPT_QUIRKS) + len(pmc_vqa.DROP_REASONS))
    # test_2.csv asks the modality question on PMC_SHARED_FIGURES figures per modality of train_2.csv too
    assert planted["rows"]["test_2.csv"] == planted["rows"]["train_2.csv"] + n_shared
    with open(folder / "test_2.csv", newline="", encoding="utf-8") as fh:
        test_figures = {r["Figure_path"] for r in csv.DictReader(fh)}
    shared = {r["Figure_path"] for r in rows} & test_figures - {""}
    assert sorted(shared) == planted["shared_figures"] and len(shared) == n_shared
    good = [r for r in rows if r["Choice A"].startswith("A:") and r["Answer_label"] in "ABCD" and r["Figure_path"]]
    assert good and all(r["Figure_path"].startswith("PMC") and r["Figure_path"].endswith(".jpg") for r in good)
    with zipfile.ZipFile(folder / "images_2.zip") as zf:
        names = zf.namelist()
        first = zf.read(f"images_2/{good[0]['Figure_path']}")
    assert first[:3] == b"\xff\xd8\xff"  # a real JPEG file
    assert len([n for n in names if not n.endswith("/")]) == planted["figures"]
    assert all(n.startswith("images_2/") for n in names)
    # several questions on the same figure: every second question shares its figure with a first one
    per_figure = Counter(r["Figure_path"] for r in rows if r["Figure_path"])
    assert max(per_figure.values()) == 2 and sum(v == 2 for v in per_figure.values()) == N_SECOND_QUESTIONS


@pytest.mark.parametrize("csv_name", ["train_2.csv", "test_2.csv"])
def test_pmc_vqa_loader_drops_exactly_what_was_planted(pmc, csv_name):
    folder, planted, _ = pmc
    ds = load_pmc(folder, csv_name)
    validate_rows(ds, csv_name)
    summary = load_summary(ds)
    assert summary["dropped"] == planted["malformed"] and summary["dropped"]["unknown_modality"] == 0
    assert {d["row"]: d["reason"] for d in summary["dropped_rows"]} == planted["planted_rows"][csv_name]
    counts = Counter(ds["modality"])
    assert {m: counts[m] for m in planted["good_rows"][csv_name]} == planted["good_rows"][csv_name]
    assert {int(i.rsplit("-", 1)[-1]): m for i, m in zip(ds["id"], ds["modality"])} == planted["modalities"][csv_name]
    # every row whose question names no modality is kept, as "other": the modality questions, the histology row
    assert counts["other"] == len(planted["other_rows"][csv_name]) >= N_SECOND_QUESTIONS + 1
    assert summary["rows_read"] == planted["rows"][csv_name] and summary["rows_kept"] == len(ds)
    # the kept quirks are kept, normalised
    kept = {int(i.rsplit("-", 1)[-1]): row for i, row in zip(ds["id"], ds.select_columns(["options", "answer"]))}
    for row, quirk in planted["kept_quirks"][csv_name].items():
        assert row in kept, quirk
        assert all("\u00a0" not in o and o == o.strip() for o in kept[row]["options"])


def test_pmc_vqa_answers_are_right_for_the_images(pmc):
    folder, _, _ = pmc
    ds = load_pmc(folder, "train_2.csv")
    rows = ds.select_columns(["question", "options", "answer", "modality", "image_path"]).to_list()
    # the second question on a figure asks for the modality: its modality is "other" (the question names none),
    # and its gold option is the figure's modality: the one its first question names, or (where the first
    # question asks for the modality too) that question's gold option
    def gold(r):
        return r["options"]["ABCD".index(r["answer"])]

    first = {r["image_path"]: r["modality"] if r["modality"] != "other" else gold(r)
             for r in rows if r["question"] != fixtures._SECOND_QUESTION}
    second = [r for r in rows if r["question"] == fixtures._SECOND_QUESTION]
    assert len(second) == N_SECOND_QUESTIONS and {r["modality"] for r in second} == {"other"}
    assert all(gold(r) == first[r["image_path"]] for r in second)


def test_pmc_vqa_unknown_modality_drop_drops_the_other_rows(pmc):
    folder, planted, _ = pmc
    with pytest.warns(UserWarning, match=r"unknown_modality"):
        ds = load_pmc_vqa(str(folder), csv="test_2.csv", unknown_modality="drop")
    summary = load_summary(ds)
    assert summary["dropped"]["unknown_modality"] == len(planted["other_rows"]["test_2.csv"])
    assert "other" not in set(ds["modality"])


def test_pmc_vqa_is_deterministic(tmp_path, pmc):
    folder, planted, _ = pmc
    again = fixtures.write_pmc_vqa(tmp_path, n_per_modality=N_PER_MODALITY)
    assert {k: v for k, v in again.items() if k != "files"} == {k: v for k, v in planted.items() if k != "files"}
    for name in ("train_2.csv", "test_2.csv", "images_2.zip"):
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes()
    other = fixtures.write_pmc_vqa(tmp_path / "other", n_per_modality=N_PER_MODALITY, seed=1)
    assert (tmp_path / "other" / "train_2.csv").read_bytes() != (folder / "train_2.csv").read_bytes()
    assert other["malformed"] == planted["malformed"]


def test_zhu_split_draws_from_the_surviving_pmc_rows(pmc):
    folder, planted, _ = pmc
    ds = load_pmc(folder, "train_2.csv")
    n = sum(planted["good_rows"]["train_2.csv"].values())
    train, test = zhu_split(ds, n_train=n - 12, n_test=9, seed=0)
    assert (len(train), len(test)) == (n - 12, 9) and set(train["id"]).isdisjoint(test["id"])
    assert set(image_keys(train)).isdisjoint(image_keys(test))  # disjoint by figure, not only by row
    assert load_summary(train)["dropped"] == planted["malformed"]
    dropped = ", ".join(f"{r} 1" for r in sorted(pmc_vqa.DROP_REASONS) if r != "unknown_modality")
    message = (rf"the dataset has {n} rows, fewer than n_train \+ n_test = {n - 9} \+ 10 = {n + 1} \(the loader kept {n}"
               rf" of {planted['rows']['train_2.csv']} rows of train_2\.csv; dropped: {dropped}\)")
    with pytest.raises(ValueError, match=message):
        zhu_split(ds, n_train=n - 9, n_test=10)


def test_huatuo_files_in_the_published_layout(hua):
    folder, planted, seconds = hua
    assert seconds < 5
    objs = json.loads((folder / huatuo.JSON_FILE).read_text(encoding="utf-8"))
    assert len(objs) == planted["rows"]
    good = [o for o in objs if isinstance(o, dict) and o.get("dataset") == "OmniMedVQA" and o.get("subset")]
    assert {o["subset"] for o in good} >= {"MR (Mag-netic Resonance Imaging)", "CT(Computed Tomography)", "X-Ray"}
    assert all(o["image"][0].startswith("images/") for o in good if o.get("image"))
    other_benchmarks = sum(1 for o in objs if isinstance(o, dict) and "subset" not in o)
    assert other_benchmarks == planted["malformed"][huatuo.MISSING_SUBSET]
    with zipfile.ZipFile(folder / "images.zip") as zf:
        assert zf.read(good[0]["image"][0])[:8] == b"\x89PNG\r\n\x1a\n"


def test_huatuo_loader_drops_exactly_what_was_planted(hua):
    folder, planted, _ = hua
    with pytest.warns(UserWarning, match=rf"{huatuo.JSON_FILE}: dropped {sum(planted['malformed'].values())} of"):
        ds = load_huatuo_eval(str(folder))
    validate_rows(ds, "huatuo")
    summary = load_summary(ds)
    assert summary["dropped"] == planted["malformed"]
    assert {d["row"]: d["reason"] for d in summary["dropped_rows"]} == planted["planted_rows"]
    assert dict(Counter(ds["modality"])) == planted["good_rows"]
    assert set(ds["source"]) == {"huatuo/omnimedvqa"}


N_TEST_PER_MODALITY = 4  # test items per modality drawn from the fixture's rows


def test_medvlm_r1_published_split_draws_from_the_surviving_huatuo_rows(hua):
    folder, planted, _ = hua
    with pytest.warns(UserWarning):
        ds = load_huatuo_eval(str(folder))
    rows = ds.select_columns(["image_path", "question", "modality"]).to_list()
    first = {m: [r for r in rows if r["modality"] == m][:N_TEST_PER_MODALITY] for m in MODALITIES}
    items = [{"image": r["image_path"], "question": r["question"], "modality": m} for m in MODALITIES for r in first[m]]
    n_train = planted["good_rows"]["MRI"] - N_TEST_PER_MODALITY  # every MRI row outside the test items
    train, test = medvlm_r1_published_split(ds, n_train_mri=n_train, seed=0, test_items=items)
    assert len(train) == n_train and set(train["modality"]) == {"MRI"}
    assert Counter(test["modality"]) == dict.fromkeys(MODALITIES, N_TEST_PER_MODALITY)
    assert set(train["id"]).isdisjoint(test["id"])
    # one training row more than are left: the message names the loader's counts and drops, as planted
    kept = sum(planted["good_rows"].values())
    message = (rf"{n_train} MRI rows are neither test rows nor show a test image \(0 more show one\), fewer than"
               rf" n_train_mri={n_train + 1} \(the loader kept {kept} of {planted['rows']} rows of"
               rf" {re.escape(huatuo.JSON_FILE)}; dropped: {format_drops(planted['malformed'])}\)$")
    with pytest.raises(ValueError, match=message):
        medvlm_r1_published_split(ds, n_train_mri=n_train + 1, test_items=items)
