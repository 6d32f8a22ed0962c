"""The PMC-VQA and HuatuoGPT-Vision loaders and the paper splits, on small local files in the published formats."""

import csv
import io
import json
import warnings
import zipfile
from collections import Counter

import datasets
import pytest
from PIL import Image

from medrl_lib.common.files import read_json
from medrl_lib.data import huatuo, pmc_vqa, schema
from medrl_lib.data.huatuo import load_huatuo_eval
from medrl_lib.data.pmc_vqa import infer_modality, load_pmc_vqa
from medrl_lib.data.schema import FEATURES, DataError, load_summary, validate_rows
from medrl_lib.data.splits import medvlm_r1_published_split, write_split_ids, zhu_split

PMC_HEADER = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
OLD_HEADER = ["Figure_path", "Question", "Anwser", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]

# (Figure_path, Question, Answer, Choice A..D, Answer_label) -> expected (options, answer, modality); the modality
# is read from the question alone, never from the options or the label
PMC_ROWS = [
    # "A:" prefixes without a space, four choices, MRI keyword "T2" (in "T2-weighted")
    (("PMC1_fig1.jpg", "What does the T2-weighted image show?", "Focal lesion",
      "A:Diffuse uptake pattern", "B:Focal lesion", "C:Normal", "D:Edema", "B"),
     (["Diffuse uptake pattern", "Focal lesion", "Normal", "Edema"], "B", "MRI")),
    # " B: " prefixes with spaces, only 2 non-empty choices, CT keyword, label with whitespace
    (("PMC2_fig3.jpg", "Which organ is enlarged on this CT scan?", "Spleen",
      " A: Liver", " B: Spleen", "", "", " B "),
     (["Liver", "Spleen"], "B", "CT")),
    # empty Choice B (and "nan" Choice D) are dropped: label C is re-lettered B; X-ray keyword "radiograph"
    (("PMC3_fig2.jpg", "What is seen on the chest radiograph?", "Nodule",
      "A:Opacity", "", "C:Nodule", "D:nan", "C"),
     (["Opacity", "Nodule"], "B", "X-ray")),
    # no modality keyword in the question: kept as "other" by default ("ACTIVE" must not match "CT")
    (("PMC4_fig1.jpg", "What is the ACTIVE staining pattern?", "Nuclear",
      "A:Nuclear", "B:Cytoplasmic", "C:Membranous", "D:None", "A"),
     (["Nuclear", "Cytoplasmic", "Membranous", "None"], "A", "other")),
    # empty Answer_label: the gold is the choice whose text equals Answer; the gold option says X-ray but the
    # question names no modality: "other" (the label is never read for the modality)
    (("PMC5_fig4.jpg", "Which imaging modality was used?", "X-ray",
      "A:MRI", "B:X-ray", "C:Ultrasound", "D:PET", ""),
     (["MRI", "X-ray", "Ultrasound", "PET"], "B", "other")),
]
OTHER_ROWS = [3, 4]  # the rows of PMC_ROWS whose question names no modality


def png(color: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (color, color, color)).save(buf, format="PNG")
    return buf.getvalue()


def write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def write_zip(path, names, prefix=""):
    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(names):
            zf.writestr(prefix + name, png(10 * i))


@pytest.fixture
def pmc_folder(tmp_path):
    """A folder as on the hub: train_2.csv + images_2.zip whose member names are the Figure_paths."""
    write_csv(tmp_path / "train_2.csv", PMC_HEADER, [row for row, _ in PMC_ROWS])
    write_zip(tmp_path / "images_2.zip", [row[0] for row, _ in PMC_ROWS])
    return tmp_path


def load_quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_pmc_vqa(*args, **kwargs)


def no_drops(reasons=pmc_vqa.DROP_REASONS, **counts):
    """The ``dropped`` dict of a load summary: every reason at 0 but those given."""
    return {reason: counts.get(reason, 0) for reason in reasons}


def test_pmc_vqa_maps_to_common_schema(pmc_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # by default nothing is dropped (Zhu's pool has no modality filter)
        ds = load_pmc_vqa(str(pmc_folder), csv="train_2.csv")
    validate_rows(ds, "train_2.csv")
    assert ds.features == FEATURES
    assert list(ds["id"]) == [f"pmc-train_2-{i:06d}" for i in range(len(PMC_ROWS))]
    assert [(r["options"], r["answer"], r["modality"]) for r in ds] == [exp for _, exp in PMC_ROWS]
    assert set(ds["source"]) == {"pmc-vqa"} and set(ds["facts"]) == {"{}"}
    assert list(ds["image_path"]) == [row[0] for row, _ in PMC_ROWS]  # Figure_path, as given
    assert ds[0]["question"] == "What does the T2-weighted image show?"
    assert ds[0]["image"].size == (8, 8)
    summary = load_summary(ds)
    assert summary == {
        "file": "train_2.csv", "rows_read": 5, "rows_kept": 5, "unknown_modality": "other",
        "dropped": no_drops(), "dropped_rows_truncated": False, "dropped_rows": [],
    }
    assert json.loads(ds.info.description) == summary


def test_pmc_vqa_drops_unknown_modality_on_request(pmc_folder):
    # unknown_modality="drop": the rows whose question names no modality are dropped and counted
    with pytest.warns(UserWarning, match=r"train_2\.csv: dropped 2 of 5 rows \(unknown_modality 2\)"):
        ds = load_pmc_vqa(str(pmc_folder), csv="train_2.csv", unknown_modality="drop")
    assert list(ds["modality"]) == ["MRI", "CT", "X-ray"]
    summary = load_summary(ds)
    assert (summary["rows_kept"], summary["unknown_modality"]) == (3, "drop")
    assert summary["dropped"] == no_drops(unknown_modality=2)
    assert [(d["row"], d["reason"]) for d in summary["dropped_rows"]] == [(3, "unknown_modality"),
                                                                          (4, "unknown_modality")]
    assert all("modality keyword" in d["detail"] for d in summary["dropped_rows"])


@pytest.mark.parametrize(
    "layout",
    [
        "csv_path",  # source is the CSV file itself; images_2.zip beside it
        "extracted",  # source is a folder with the images extracted under figures/ (no zip)
        "prefixed_zip",  # the zip's members carry an "images/" prefix before the Figure_path
        "images_arg",  # images passed explicitly as a folder elsewhere
    ],
)
def test_pmc_vqa_local_layouts(tmp_path, layout):
    rows = [row for row, _ in PMC_ROWS[:3]]
    names = [row[0] for row in rows]
    write_csv(tmp_path / "test_2.csv", PMC_HEADER, rows)
    kwargs = {"csv": "test_2.csv"}
    source = str(tmp_path)
    if layout == "csv_path":
        write_zip(tmp_path / "images_2.zip", names)
        source, kwargs = str(tmp_path / "test_2.csv"), {}
    elif layout == "extracted":
        (tmp_path / "figures").mkdir()
        for name in names:
            (tmp_path / "figures" / name).write_bytes(png())
    elif layout == "prefixed_zip":
        write_zip(tmp_path / "images_2.zip", names, prefix="images/")
    else:
        other = tmp_path / "elsewhere"
        other.mkdir()
        for name in names:
            (other / name).write_bytes(png())
        kwargs["images"] = str(other)
    ds = load_pmc_vqa(source, **kwargs)
    validate_rows(ds, layout)
    assert list(ds["id"]) == [f"pmc-test_2-{i:06d}" for i in range(3)]
    assert list(ds["modality"]) == ["MRI", "CT", "X-ray"]


def test_pmc_vqa_old_spelling_without_label_and_limit(tmp_path):
    # old files spell the column "Anwser"; an all-empty Answer_label column falls back to the answer text
    rows = [(f, q, a, *choices, "") for (f, q, a, *choices, _), _ in PMC_ROWS]
    write_csv(tmp_path / "train.csv", OLD_HEADER, rows)
    write_zip(tmp_path / "images.zip", [row[0] for row in rows])
    ds = load_quiet(str(tmp_path), csv="train.csv", limit=3)
    assert list(ds["id"]) == ["pmc-train-000000", "pmc-train-000001", "pmc-train-000002"]
    assert list(ds["answer"]) == ["B", "B", "B"]
    # a file with neither Answer_label nor the answer text under either spelling is an unknown layout
    write_csv(tmp_path / "bad.csv", [h for h in OLD_HEADER if h not in ("Anwser", "Answer_label")],
              [row[:2] + row[3:7] for row in rows])
    with pytest.raises(DataError, match=r"bad\.csv.*Answer_label"):
        load_pmc_vqa(str(tmp_path / "bad.csv"), images=str(tmp_path / "images.zip"))


def test_pmc_vqa_unknown_modality_assigned(pmc_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, so nothing is warned
        ds = load_pmc_vqa(str(pmc_folder), unknown_modality="CT")
    assert len(ds) == 5 and list(ds["modality"]) == ["MRI", "CT", "X-ray", "CT", "CT"]
    with pytest.raises(ValueError, match="unknown_modality must be one of"):
        load_pmc_vqa(str(pmc_folder), unknown_modality="PET")


GOOD_ROWS = [row for row, _ in PMC_ROWS[:3]]  # MRI, CT, X-ray rows, all kept with the gold letter B
GOOD_IDS = ["pmc-train_2-000000", "pmc-train_2-000001", "pmc-train_2-000003"]  # the bad row is row 2
CT_ROW = ("PMC9_fig9.jpg", "Which organ is enlarged on this CT scan?")  # Figure_path and Question of a bad row


def load_with_row(folder, row, header=PMC_HEADER, **kwargs):
    """Write GOOD_ROWS with ``row`` at index 2 (images for all but 'missing.jpg'), load, return the dataset."""
    write_csv(folder / "train_2.csv", header, GOOD_ROWS[:2] + [row] + GOOD_ROWS[2:])
    write_zip(folder / "images_2.zip", [r[0] for r in GOOD_ROWS] + ["PMC9_fig9.jpg"])
    return load_pmc_vqa(str(folder), **kwargs)


@pytest.mark.parametrize(
    "reason, row",
    [
        # the question is a non-breaking space only
        ("empty_question", ("PMC9_fig9.jpg", "\u00a0 ", "Liver", "A:Liver", "B:Spleen", "", "", "A")),
        # Figure_path is empty
        ("empty_image", ("", CT_ROW[1], "Liver", "A:Liver", "B:Spleen", "", "", "A")),
        # column "Choice B" holds "C:..." (the choices are shifted against their columns)
        ("foreign_choice_prefix", (*CT_ROW, "Liver", "A:Liver", "C:Spleen", "C:Kidney", "", "A")),
        # only one non-empty choice ("nan" is pandas' empty cell, "D:" a prefix without text)
        ("too_few_options", (*CT_ROW, "Liver", "A:Liver", "", "nan", "D:", "A")),
        # Answer_label names the empty choice C
        ("label_not_in_choices", (*CT_ROW, "Liver", "A:Liver", "B:Spleen", "", "", "C")),
        # Answer_label is not a letter at all
        ("label_not_in_choices", (*CT_ROW, "Liver", "A:Liver", "B:Spleen", "", "", "Liver")),
        # Answer_label says A (Liver) but the answer text is choice B's
        ("label_contradicts_answer", (*CT_ROW, "Spleen", "A:Liver", "B:Spleen", "C:Kidney", "", "A")),
        # ... also when compared without case, whitespace and letter prefix
        ("label_contradicts_answer", (*CT_ROW, " B: SPLEEN\u00a0", "A:Liver", "B:Spleen", "", "", "A")),
        # no Answer_label, and the answer text matches no choice
        ("no_gold", (*CT_ROW, "Kidney", "A:Liver", "B:Spleen", "", "", "")),
        # no Answer_label, and the answer text matches two choices
        ("no_gold", (*CT_ROW, "Liver", "A:Liver", "B:Spleen", "C: liver", "", "")),
        # no modality keyword in the question (dropped only with unknown_modality="drop")
        ("unknown_modality", ("PMC9_fig9.jpg", "Which stain is used?", "H&E", "A:H&E", "B:PAS", "", "", "A")),
        # the Figure_path is not in the archive (found when the images are read)
        ("missing_image", ("missing.jpg", CT_ROW[1], "Liver", "A:Liver", "B:Spleen", "", "", "A")),
    ],
)
def test_pmc_vqa_skips_and_counts_malformed_rows(tmp_path, reason, row):
    with pytest.warns(UserWarning, match=rf"train_2\.csv: dropped 1 of 4 rows \({reason} 1\)"):
        ds = load_with_row(tmp_path, row, unknown_modality="drop")
    summary = load_summary(ds)
    assert (summary["rows_read"], summary["rows_kept"]) == (4, 3)
    assert summary["dropped"] == no_drops(**{reason: 1})
    assert [(d["row"], d["id"], d["reason"]) for d in summary["dropped_rows"]] == [(2, "pmc-train_2-000002", reason)]
    assert summary["dropped_rows"][0]["detail"]
    # the good rows survive, with their answers
    assert list(ds["id"]) == GOOD_IDS
    assert [(r["options"], r["answer"]) for r in ds] == [exp[:2] for _, exp in PMC_ROWS[:3]]


@pytest.mark.parametrize(
    "row, options, answer",
    [
        # stray non-breaking spaces in choices, answer text and label are normalised away
        ((*CT_ROW, "Spleen\u00a0", "A:\u00a0Liver", "B:\u00a0Spleen ", "", "", "B\u00a0"), ["Liver", "Spleen"], "B"),
        # thin space and zero-width space inside a choice; the label's choice agrees with the answer text
        ((*CT_ROW, "left lobe", "A:Left\u2009lobe", "B:Right\u200b lobe", "", "", "A"), ["Left lobe", "Right lobe"], "A"),
        # the answer text matches no choice (a paraphrase): the label is kept
        ((*CT_ROW, "The spleen is enlarged", "A:Liver", "B:Spleen", "", "", "B"), ["Liver", "Spleen"], "B"),
        # the answer text matches two choices, one of them the label's: no contradiction
        ((*CT_ROW, "Liver", "A:Liver", "B:liver", "C:Spleen", "", "B"), ["Liver", "liver", "Spleen"], "B"),
        # no label: the answer text (with a letter prefix, another case) names the gold choice
        ((*CT_ROW, "C: SPLEEN", "A:Liver", "", "C:Spleen", "", ""), ["Liver", "Spleen"], "B"),
        # the choice's own prefix with spaces around the colon
        ((*CT_ROW, "Spleen", "A : Liver", "B :Spleen", "", "", "B"), ["Liver", "Spleen"], "B"),
    ],
)
def test_pmc_vqa_normalises_quirks_and_keeps_the_row(tmp_path, row, options, answer):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is dropped, so nothing is warned
        ds = load_with_row(tmp_path, row)
    assert load_summary(ds)["dropped"] == no_drops()
    assert len(ds) == 4 and ds[2]["id"] == "pmc-train_2-000002"
    assert (ds[2]["options"], ds[2]["answer"], ds[2]["modality"]) == (options, answer, "CT")


def test_pmc_vqa_empty_image_file_is_missing(tmp_path):
    # an image file of 0 bytes counts as missing_image, with a detail saying so
    write_csv(tmp_path / "train_2.csv", PMC_HEADER, GOOD_ROWS)
    write_zip(tmp_path / "images_2.zip", [r[0] for r in GOOD_ROWS[1:]])
    with zipfile.ZipFile(tmp_path / "images_2.zip", "a") as zf:
        zf.writestr(GOOD_ROWS[0][0], b"")
    ds = load_quiet(str(tmp_path))
    (drop,) = load_summary(ds)["dropped_rows"]
    assert (drop["row"], drop["reason"]) == (0, "missing_image") and "empty file" in drop["detail"]
    assert list(ds["id"]) == ["pmc-train_2-000001", "pmc-train_2-000002"]


def test_pmc_vqa_whole_file_errors(tmp_path):
    # a required column missing from the header is a whole-file error naming the columns
    header = [h for h in PMC_HEADER if h != "Question"]
    write_csv(tmp_path / "train_2.csv", header, [("PMC1_fig1.jpg", "Liver", "A:Liver", "B:Spleen", "", "", "A")])
    with pytest.raises(DataError, match=r"train_2\.csv: missing column\(s\) \['Question'\]"):
        load_pmc_vqa(str(tmp_path))
    # no row kept: names the file and the drop counts
    write_csv(tmp_path / "train_2.csv", PMC_HEADER, [
        ("missing.jpg", CT_ROW[1], "Liver", "A:Liver", "B:Spleen", "", "", "A"),
        (*CT_ROW, "Liver", "A:Liver", "B:Spleen", "", "", "C"),
        ("gone.jpg", CT_ROW[1], "Liver", "A:Liver", "B:Spleen", "", "", "A"),
    ])
    write_zip(tmp_path / "images_2.zip", ["PMC9_fig9.jpg"])
    with pytest.raises(DataError, match=r"train_2\.csv: no row kept \(the loader kept 0 of 3 rows of train_2\.csv;"
                                        r" dropped: missing_image 2, label_not_in_choices 1\)"):
        load_pmc_vqa(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no CSV file 'test_2.csv'"):
        load_pmc_vqa(str(tmp_path), csv="test_2.csv")


def test_pmc_vqa_dropped_rows_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MAX_DROPPED_ROWS", 2)
    bad = [(f"gone{i}.jpg", CT_ROW[1], "Liver", "A:Liver", "B:Spleen", "", "", "A") for i in range(3)]
    write_csv(tmp_path / "train_2.csv", PMC_HEADER, [*bad, GOOD_ROWS[0], (*CT_ROW, "x", "A:x", "", "", "", "A")])
    write_zip(tmp_path / "images_2.zip", [GOOD_ROWS[0][0]])
    ds = load_quiet(str(tmp_path))
    summary = load_summary(ds)
    assert summary["dropped"] == no_drops(missing_image=3, too_few_options=1)  # the counts stay complete
    assert [d["row"] for d in summary["dropped_rows"]] == [0, 1] and summary["dropped_rows_truncated"] is True
    assert list(ds["id"]) == ["pmc-train_2-000003"]


def test_pmc_vqa_hub_download(pmc_folder, monkeypatch):
    # a hub id downloads the CSV and the archive its name goes with, from the dataset repo
    calls = []

    def fake_download(repo_id, filename, repo_type=None, **kwargs):
        calls.append((repo_id, filename, repo_type))
        return str(pmc_folder / filename)

    monkeypatch.setattr(pmc_vqa, "hf_hub_download", fake_download)
    ds = load_quiet("xmcmic/PMC-VQA", csv="train_2.csv", limit=2)
    assert calls == [("xmcmic/PMC-VQA", "train_2.csv", "dataset"), ("xmcmic/PMC-VQA", "images_2.zip", "dataset")]
    assert len(ds) == 2
    with pytest.raises(FileNotFoundError, match="neither"):
        load_pmc_vqa(str(pmc_folder / "no" / "such" / "place"))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Axial T2-weighted image", "MRI"),  # T2, whole word before a hyphen
        ("FLAIR sequence of the brain", "MRI"),
        ("magnetic resonance angiography", "MRI"),
        ("Sagittal MRI of the knee", "MRI"),
        ("T1WI post contrast", "MRI"),
        ("Contrast-enhanced CT of the chest", "CT"),
        ("PET/CT fusion image", "CT"),  # "/" is a word boundary
        ("computed tomography angiogram", "CT"),
        ("Chest X-ray, PA view", "X-ray"),
        ("plain radiograph of the wrist", "X-ray"),
        ("xray of the hand", "X-ray"),
        ("ACTIVE lesion in the SPECT image", None),  # "CT" inside words does not count
        ("Fracture at T12", None),  # "T1" inside "T12" does not count
        ("CT and MRI of the brain", None),  # two modalities: ambiguous
        ("Histology, H&E stain", None),  # no keyword
    ],
)
def test_infer_modality(text, expected):
    assert infer_modality(text) == expected


HUATUO_ITEMS = [
    # (subset, dataset, options, answer index) -> expected answer letter and modality, or None (dropped)
    ("MR (Mag-netic Resonance Imaging)", "OmniMedVQA", ["Brain", "Liver"], 1, ("B", "MRI")),  # 2 options
    ("CT(Computed Tomography)", "OmniMedVQA", ["a", "b", "c", "d", "e", "f"], 5, ("F", "CT")),  # 6 options
    ("X-Ray", "OmniMedVQA", ["Pneumonia", "Normal", "Effusion"], 0, ("A", "X-ray")),
    ("Fundus Photography", "OmniMedVQA", ["Glaucoma", "Normal"], 0, None),  # other subset: dropped
    ("MR (Mag-netic Resonance Imaging)", "VQA-RAD", ["yes", "no"], 1, None),  # outside the default filter
]


def write_huatuo(folder, items=HUATUO_ITEMS, json_name="medical_multimodel_evaluation_data.json"):
    objs = [
        {"question": f"Question {i}?", "options": opts, "answer": opts[k], "image": [f"images/bench/{i}.png"],
         "dataset": bench, "subset": subset}
        for i, (subset, bench, opts, k, _) in enumerate(items)
    ]
    (folder / json_name).write_text(json.dumps(objs))
    write_zip(folder / "images.zip", [o["image"][0] for o in objs])
    return objs


def test_huatuo_maps_to_common_schema(tmp_path):
    write_huatuo(tmp_path)
    with pytest.warns(UserWarning, match=r"medical_multimodel_evaluation_data\.json: dropped 2 of 5 rows"
                                         r" \(dataset_filter 1, other_subset 1\)"):
        ds = load_huatuo_eval(str(tmp_path))
    validate_rows(ds, "huatuo")
    assert ds.features == FEATURES
    kept = [(i, exp) for i, (*_, exp) in enumerate(HUATUO_ITEMS) if exp is not None]
    assert list(ds["id"]) == [f"huatuo-{i:06d}" for i, _ in kept]
    assert list(zip(ds["answer"], ds["modality"])) == [exp for _, exp in kept]
    assert list(ds["options"])[1] == ["a", "b", "c", "d", "e", "f"]
    assert set(ds["source"]) == {"huatuo/omnimedvqa"}
    summary = load_summary(ds)
    assert (summary["rows_read"], summary["rows_kept"], summary["datasets_filter"]) == (5, 3, ["OmniMedVQA"])
    assert summary["dropped"] == no_drops(huatuo.DROP_REASONS, other_subset=1, dataset_filter=1)
    assert [(d["row"], d["reason"]) for d in summary["dropped_rows"]] == [(3, "other_subset"), (4, "dataset_filter")]
    # no dataset filter: the VQA-RAD item is kept too, with its own source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        everything = load_huatuo_eval(str(tmp_path / "medical_multimodel_evaluation_data.json"), datasets_filter=None)
    assert list(everything["id"])[-1] == "huatuo-000004" and list(everything["source"])[-1] == "huatuo/vqa-rad"


def test_huatuo_hub_download(tmp_path, monkeypatch):
    # a hub id fetches the JSON file and images.zip with snapshot_download from the dataset repo
    write_huatuo(tmp_path)
    calls = []

    def fake_snapshot(repo_id, repo_type=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, repo_type, allow_patterns))
        return str(tmp_path)

    monkeypatch.setattr(huatuo, "snapshot_download", fake_snapshot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_huatuo_eval()) == 3
    assert calls == [("FreedomIntelligence/Medical_Multimodal_Evaluation_Data", "dataset",
                      ["medical_multimodel_evaluation_data.json", "images.zip"])]


def without(obj, field):
    return {k: v for k, v in obj.items() if k != field}


@pytest.mark.parametrize(
    "reason, change",
    [
        # a list entry that is not an object
        ("not_an_object", lambda o: "Question 1?"),
        ("not_an_object", lambda o: [o]),
        # another benchmark's object has no subset at all
        ("missing_subset", lambda o: without(o, "subset")),
        # a subset that is not a string
        ("missing_subset", lambda o: {**o, "subset": None}),
        # a subset outside MRI, CT and X-ray
        ("other_subset", lambda o: {**o, "subset": "Fundus Photography"}),
        # no dataset field
        ("missing_dataset", lambda o: without(o, "dataset")),
        # a benchmark outside the default filter (OmniMedVQA)
        ("dataset_filter", lambda o: {**o, "dataset": "VQA-RAD"}),
        # a question of whitespace only, and none at all
        ("empty_question", lambda o: {**o, "question": " \u00a0"}),
        ("empty_question", lambda o: without(o, "question")),
        # an open question: no options, or options null
        ("open_question", lambda o: without(o, "options")),
        ("open_question", lambda o: {**o, "options": None}),
        # an empty options list
        ("empty_options", lambda o: {**o, "options": []}),
        # 7 options, 1 option, a non-string option, an empty option, options as one string
        ("bad_options", lambda o: {**o, "options": list("abcdefg"), "answer": "a"}),
        ("bad_options", lambda o: {**o, "options": ["Liver"], "answer": "Liver"}),
        ("bad_options", lambda o: {**o, "options": ["Brain", 3]}),
        ("bad_options", lambda o: {**o, "options": ["Brain", " "]}),
        ("bad_options", lambda o: {**o, "options": "Brain, Liver"}),
        # the answer "?", an answer among no options, no answer
        ("unknown_answer", lambda o: {**o, "answer": "?"}),
        ("unknown_answer", lambda o: {**o, "answer": "Kidney"}),
        ("unknown_answer", lambda o: without(o, "answer")),
        # an empty image list, a bare string, an empty path
        ("empty_image", lambda o: {**o, "image": []}),
        ("empty_image", lambda o: {**o, "image": "images/bench/0.png"}),
        ("empty_image", lambda o: {**o, "image": [""]}),
        # the image path is not in images.zip (found when the images are read)
        ("missing_image", lambda o: {**o, "image": ["images/bench/nowhere.png"]}),
    ],
)
def test_huatuo_skips_and_counts_malformed_objects(tmp_path, reason, change):
    objs = write_huatuo(tmp_path, HUATUO_ITEMS[:3])  # MRI, CT, X-ray, all kept
    objs.insert(1, change(dict(objs[0])))
    (tmp_path / "medical_multimodel_evaluation_data.json").write_text(json.dumps(objs))
    with pytest.warns(UserWarning, match=rf"medical_multimodel_evaluation_data\.json: dropped 1 of 4 rows \({reason} 1\)"):
        ds = load_huatuo_eval(str(tmp_path))
    summary = load_summary(ds)
    assert summary["dropped"] == no_drops(huatuo.DROP_REASONS, **{reason: 1})
    assert [(d["row"], d["id"], d["reason"]) for d in summary["dropped_rows"]] == [(1, "huatuo-000001", reason)]
    assert list(ds["id"]) == ["huatuo-000000", "huatuo-000002", "huatuo-000003"]
    assert list(zip(ds["answer"], ds["modality"])) == [exp for *_, exp in HUATUO_ITEMS[:3]]


def test_huatuo_normalises_whitespace(tmp_path):
    objs = write_huatuo(tmp_path, HUATUO_ITEMS[:1])
    objs[0].update(options=["Brain\u00a0", " Liver"], answer="\u00a0Liver\u2009")
    (tmp_path / "medical_multimodel_evaluation_data.json").write_text(json.dumps(objs))
    ds = load_huatuo_eval(str(tmp_path))
    assert (ds[0]["options"], ds[0]["answer"]) == (["Brain", "Liver"], "B")


@pytest.mark.parametrize(
    "text, error, match",
    [
        ("[{", DataError, r"medical_multimodel_evaluation_data\.json: not valid JSON"),  # broken JSON
        ('{"question": "q"}', DataError, r"expected a JSON list of objects, got dict"),  # top level not a list
        ('[{"question": "q"}, 3]', DataError, r"no row kept \(.*kept 0 of 2 rows.*not_an_object 1"),  # nothing kept
        (None, FileNotFoundError, r"no JSON file"),  # no file
    ],
)
def test_huatuo_whole_file_errors(tmp_path, text, error, match):
    if text is not None:
        (tmp_path / "medical_multimodel_evaluation_data.json").write_text(text)
    with pytest.raises(error, match=match):
        load_huatuo_eval(str(tmp_path))


def tiny_dataset(modalities):
    n = len(modalities)
    image = {"bytes": png(), "path": None}
    return datasets.Dataset.from_dict(
        {"id": [f"row-{i:03d}" for i in range(n)], "image": [image] * n, "question": ["q?"] * n,
         "options": [["a", "b"]] * n, "answer": ["A"] * n, "modality": list(modalities), "source": ["t"] * n,
         "facts": ["{}"] * n, "image_path": [f"img-{i:03d}.png" for i in range(n)]},
        features=FEATURES,
    )


def test_zhu_split_sizes_disjoint_deterministic():
    ds = tiny_dataset(["MRI", "CT", "X-ray"] * 5)  # 15 rows
    train, test = zhu_split(ds, n_train=6, n_test=4, seed=3)
    assert (len(train), len(test)) == (6, 4)
    assert set(train["id"]).isdisjoint(test["id"])
    again = zhu_split(ds, n_train=6, n_test=4, seed=3)
    ids = (list(train["id"]), list(test["id"]))
    assert (list(again[0]["id"]), list(again[1]["id"])) == ids  # same seed, same split
    other = zhu_split(ds, n_train=6, n_test=4, seed=4)
    assert (list(other[0]["id"]), list(other[1]["id"])) != ids  # another seed, another split
    with pytest.raises(ValueError, match=r"15 rows, fewer than n_train \+ n_test = 10 \+ 6 = 16"):
        zhu_split(ds, n_train=10, n_test=6)


def test_splits_keep_the_loader_summary_and_name_the_drops(pmc_folder, tmp_path):
    ds = load_quiet(str(pmc_folder), unknown_modality="drop")  # 3 of 5 rows kept
    train, test = zhu_split(ds, n_train=2, n_test=1)
    # the loader summary is kept, and the split adds its own entry
    assert {k: v for k, v in load_summary(train).items() if k != "split"} == load_summary(ds) != {}
    assert load_summary(train)["split"] == load_summary(test)["split"] == {
        "name": "zhu", "seed": 0, "n_train": 2, "n_test": 1, "train_rows_sharing_a_test_image": 0,
        "train_images": 2, "test_images": 1}
    with pytest.raises(ValueError, match=r"3 rows, fewer than n_train \+ n_test = 3 \+ 1 = 4 \(the loader kept 3 of 5"
                                         r" rows of train_2\.csv; dropped: unknown_modality 2\)"):
        zhu_split(ds, n_train=3, n_test=1)
    write_huatuo(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = load_huatuo_eval(str(tmp_path))
    ct_item = {"image": "images/bench/1.png", "question": "Question 1?"}  # the CT row: 1 MRI row is left
    with pytest.raises(ValueError, match=r"1 MRI rows are neither test rows nor show a test image \(0 more show one\),"
                                         r" fewer than n_train_mri=2 \(the loader kept 3 of 5 rows of"
                                         r" medical_multimodel_evaluation_data\.json; dropped: dataset_filter 1,"
                                         r" other_subset 1\)$"):
        medvlm_r1_published_split(ds, n_train_mri=2, test_items=[ct_item])
    # a dataset without a loader summary: the message has no note
    with pytest.raises(ValueError, match=r"= 16$"):
        zhu_split(tiny_dataset(["CT"] * 15), n_train=10, n_test=6)


def test_write_split_ids(tmp_path):
    ds = tiny_dataset(["MRI"] * 6 + ["CT"] * 3 + ["X-ray"] * 2)
    train, test = zhu_split(ds, n_train=3, n_test=6, seed=1)
    path = tmp_path / "splits" / "zhu.json"
    write_split_ids(path, train, test, seed=1, split="zhu", extra={"source": "pmc-vqa"})
    saved = read_json(path)
    assert saved["train"] == list(train["id"]) and saved["test"] == list(test["id"])
    assert (saved["seed"], saved["split"], saved["n_train"], saved["n_test"]) == (1, "zhu", 3, 6)
    counts = {name: dict(sorted(Counter(part["modality"]).items()))
              for name, part in (("train", train), ("test", test))}
    assert saved["modalities"] == counts and sum(counts["test"].values()) == 6
    assert saved["source"] == "pmc-vqa"
    with pytest.raises(ValueError, match="share 3 id"):
        write_split_ids(path, train, train, seed=1)


@pytest.mark.filterwarnings("ignore:.*dropped:UserWarning")
def test_paper_profile_splits_read_local_files_in_the_published_formats(tmp_path):
    """make_splits on the real-data sources: Zhu's split (train_2.csv / test_2.csv, disjoint by image) and
    MedVLM-R1's (its published test items, the first of each modality here, and MRI training items)."""
    from medrl_lib.data.splits import make_splits
    from medrl_lib.config import load_profile
    from medrl_lib.data import fixtures
    from medrl_lib.data.splits import image_keys

    fixtures.write_pmc_vqa(tmp_path / "pmc", n_per_modality=6)
    p = load_profile("paper", overrides={"data.pmc_vqa_path": str(tmp_path / "pmc"), "data.train_size": 8,
                                         "data.test_size": 6})
    train, test = make_splits(p)
    assert (len(train), len(test)) == (8, 6)
    assert set(image_keys(train)).isdisjoint(image_keys(test))  # no figure in both
    assert all(i.startswith("pmc-test_2-") for i in test["id"]) and all(i.startswith("pmc-train_2-") for i in train["id"])
    from medrl_lib.data import medvlm_r1_test_items

    published = medvlm_r1_test_items(1)
    fixtures.write_huatuo_eval(tmp_path / "huatuo", n_train_mri=3, n_test_per_modality=1, published=published)
    p = load_profile("paper", overrides={"data.source": "huatuo-eval", "data.huatuo_path": str(tmp_path / "huatuo"),
                                         "data.train_size": 2, "data.test_per_modality": 1})
    train, test = make_splits(p)
    assert set(train["modality"]) == {"MRI"} and list(test["modality"]) == ["MRI", "CT", "X-ray"]  # published order
    assert [q.strip() for q in test["question"]] == [item["question"].strip() for item in published]
    assert set(image_keys(train)).isdisjoint(image_keys(test))
