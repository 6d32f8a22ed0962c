"""The PMC-VQA and HuatuoGPT-Vision loaders and the paper splits, on small local files in the published formats."""

import csv
import io
import json
import warnings
import zipfile

import datasets
import pytest
from PIL import Image

from medrl_lib.data import huatuo, pmc_vqa
from medrl_lib.data.huatuo import load_huatuo_eval
from medrl_lib.data.pmc_vqa import infer_modality, load_pmc_vqa
from medrl_lib.data.schema import FEATURES, DataError, validate_rows
from medrl_lib.data.splits import medvlm_r1_split, write_split_ids, zhu_split
from medrl_lib.results import read_json

PMC_HEADER = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]
OLD_HEADER = ["Figure_path", "Question", "Anwser", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]

# (Figure_path, Question, Answer, Choice A..D, Answer_label) -> expected (options, answer, modality) or None (dropped)
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
    # no modality keyword in question or answer: dropped by default ("ACTIVE" must not match "CT")
    (("PMC4_fig1.jpg", "What is the ACTIVE staining pattern?", "Nuclear",
      "A:Nuclear", "B:Cytoplasmic", "C:Membranous", "D:None", "A"),
     None),
    # empty Answer_label: the gold is the choice whose text equals Answer; modality from the answer text
    (("PMC5_fig4.jpg", "Which imaging modality was used?", "X-ray",
      "A:MRI", "B:X-ray", "C:Ultrasound", "D:PET", ""),
     (["MRI", "X-ray", "Ultrasound", "PET"], "B", "X-ray")),
]


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


def test_pmc_vqa_maps_to_common_schema(pmc_folder):
    with pytest.warns(UserWarning, match="dropped 1 of 5 rows"):
        ds = load_pmc_vqa(str(pmc_folder), csv="train_2.csv")
    validate_rows(ds, "train_2.csv")
    assert ds.features == FEATURES
    expected = [(f"pmc-train_2-{i:06d}", exp) for i, (_, exp) in enumerate(PMC_ROWS) if exp is not None]
    assert list(ds["id"]) == [row_id for row_id, _ in expected]
    assert [(r["options"], r["answer"], r["modality"]) for r in ds] == [exp for _, exp in expected]
    assert set(ds["source"]) == {"pmc-vqa"} and set(ds["facts"]) == {"{}"}
    assert ds[0]["question"] == "What does the T2-weighted image show?"
    assert ds[0]["image"].size == (8, 8)
    assert json.loads(ds.info.description) == {"file": "train_2.csv", "rows_read": 5, "rows_kept": 4,
                                                "dropped_unknown_modality": 1, "unknown_modality": "drop"}


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
    assert len(ds) == 5 and list(ds["modality"])[3] == "CT"
    with pytest.raises(ValueError, match="unknown_modality"):
        load_pmc_vqa(str(pmc_folder), unknown_modality="other")


@pytest.mark.parametrize(
    "row, header, match",
    [
        # the Figure_path is not in the archive: names the file, the row id and the field 'image'
        (("missing.jpg", "CT of the abdomen?", "Liver", "A:Liver", "B:Spleen", "", "", "A"), PMC_HEADER,
         r"train_2\.csv: row id='pmc-train_2-000000' \(row 0\): field 'image'"),
        # Answer_label names an empty choice
        (("PMC1_fig1.jpg", "CT of the abdomen?", "Liver", "A:Liver", "B:Spleen", "", "", "C"), PMC_HEADER,
         r"train_2\.csv: row id='pmc-train_2-000000' \(row 0\): field 'answer'"),
        # no Answer_label and the answer text matches no choice
        (("PMC1_fig1.jpg", "CT of the abdomen?", "Kidney", "A:Liver", "B:Spleen", "", "", ""), PMC_HEADER,
         r"pmc-train_2-000000.*field 'answer'"),
        # only one non-empty choice
        (("PMC1_fig1.jpg", "CT of the abdomen?", "Liver", "A:Liver", "", "", "", "A"), PMC_HEADER,
         r"pmc-train_2-000000.*field 'options'"),
        # unknown column layout: the Question column is missing
        (("PMC1_fig1.jpg", "Liver", "A:Liver", "B:Spleen", "", "", "A"),
         [h for h in PMC_HEADER if h != "Question"], r"train_2\.csv: missing column\(s\) \['Question'\]"),
    ],
)
def test_pmc_vqa_errors(tmp_path, row, header, match):
    write_csv(tmp_path / "train_2.csv", header, [row])
    write_zip(tmp_path / "images_2.zip", ["PMC1_fig1.jpg"])
    with pytest.raises(DataError, match=match):
        load_pmc_vqa(str(tmp_path))


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
    ds = load_huatuo_eval(str(tmp_path))
    validate_rows(ds, "huatuo")
    assert ds.features == FEATURES
    kept = [(i, exp) for i, (*_, exp) in enumerate(HUATUO_ITEMS) if exp is not None]
    assert list(ds["id"]) == [f"huatuo-{i:06d}" for i, _ in kept]
    assert list(zip(ds["answer"], ds["modality"])) == [exp for _, exp in kept]
    assert list(ds["options"])[1] == ["a", "b", "c", "d", "e", "f"]
    assert set(ds["source"]) == {"huatuo/omnimedvqa"}
    summary = json.loads(ds.info.description)
    assert (summary["rows_read"], summary["dropped_other_subset"], summary["dropped_by_dataset_filter"]) == (5, 1, 1)
    # no dataset filter: the VQA-RAD item is kept too, with its own source
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
    assert len(load_huatuo_eval()) == 3
    assert calls == [("FreedomIntelligence/Medical_Multimodal_Evaluation_Data", "dataset",
                      ["medical_multimodel_evaluation_data.json", "images.zip"])]


@pytest.mark.parametrize(
    "change, match",
    [
        # the answer is not among the options: names the file, the row id and the field
        (lambda o: o.update(answer="Kidney"),
         r"medical_multimodel_evaluation_data\.json: row id='huatuo-000000' \(row 0\): field 'answer'"),
        # a missing field is named
        (lambda o: o.pop("options"), r"huatuo-000000.*field 'options' is missing"),
        # an empty image list
        (lambda o: o.update(image=[]), r"huatuo-000000.*field 'image'"),
        # too many options (7)
        (lambda o: o.update(options=list("abcdefg"), answer="a"), r"huatuo-000000.*field 'options' has 7"),
        # the image path is not in images.zip
        (lambda o: o.update(image=["images/bench/nowhere.png"]), r"huatuo-000000.*field 'image'.*not found"),
    ],
)
def test_huatuo_errors(tmp_path, change, match):
    objs = write_huatuo(tmp_path, HUATUO_ITEMS[:1])
    change(objs[0])
    (tmp_path / "medical_multimodel_evaluation_data.json").write_text(json.dumps(objs))
    with pytest.raises(DataError, match=match):
        load_huatuo_eval(str(tmp_path))


def tiny_dataset(modalities):
    n = len(modalities)
    image = {"bytes": png(), "path": None}
    return datasets.Dataset.from_dict(
        {"id": [f"row-{i:03d}" for i in range(n)], "image": [image] * n, "question": ["q?"] * n,
         "options": [["a", "b"]] * n, "answer": ["A"] * n, "modality": list(modalities), "source": ["t"] * n,
         "facts": ["{}"] * n},
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


def test_medvlm_r1_split_sizes_disjoint_deterministic():
    ds = tiny_dataset(["MRI"] * 6 + ["CT"] * 3 + ["X-ray"] * 2)
    train, test = medvlm_r1_split(ds, n_train_mri=3, n_test_per_modality=2, seed=1)
    assert len(train) == 3 and set(train["modality"]) == {"MRI"}
    assert sorted(test["modality"]) == ["CT", "CT", "MRI", "MRI", "X-ray", "X-ray"]
    assert set(train["id"]).isdisjoint(test["id"])
    again = medvlm_r1_split(ds, n_train_mri=3, n_test_per_modality=2, seed=1)
    assert (list(again[0]["id"]), list(again[1]["id"])) == (list(train["id"]), list(test["id"]))
    # too few: MRI needs 2 + 5 rows and X-ray 3; both are named with their counts
    with pytest.raises(ValueError, match=r"'MRI' has 6 rows, needs 8; 'X-ray' has 2 rows, needs 3"):
        medvlm_r1_split(ds, n_train_mri=5, n_test_per_modality=3)


def test_write_split_ids(tmp_path):
    ds = tiny_dataset(["MRI"] * 6 + ["CT"] * 3 + ["X-ray"] * 2)
    train, test = medvlm_r1_split(ds, n_train_mri=3, n_test_per_modality=2, seed=1)
    path = tmp_path / "splits" / "medvlm-r1.json"
    write_split_ids(path, train, test, seed=1, split="medvlm-r1", extra={"source": "huatuo"})
    saved = read_json(path)
    assert saved["train"] == list(train["id"]) and saved["test"] == list(test["id"])
    assert (saved["seed"], saved["split"], saved["n_train"], saved["n_test"]) == (1, "medvlm-r1", 3, 6)
    assert saved["modalities"] == {"train": {"MRI": 3}, "test": {"CT": 2, "MRI": 2, "X-ray": 2}}
    assert saved["source"] == "huatuo"
    with pytest.raises(ValueError, match="share 3 id"):
        write_split_ids(path, train, train, seed=1)


def test_paper_profile_splits_read_local_files_in_the_published_formats(pmc_folder, tmp_path, monkeypatch):
    """make_splits on the real-data sources: PMC-VQA (Zhu's split) and the HuatuoGPT-Vision data (MedVLM-R1's)."""
    from medrl_lib import experiments
    from medrl_lib.config import load_profile

    monkeypatch.setattr(experiments, "ZHU_TEST_SIZE", 1)  # the fixture has 4 usable rows, not 17K
    p = load_profile("paper", overrides={"data.path": str(pmc_folder), "data.train_size": 2})
    train, test = experiments.make_splits(p)
    assert (len(train), len(test)) == (2, 1) and set(train["id"]).isdisjoint(test["id"])
    items = [("MR (Mag-netic Resonance Imaging)", "OmniMedVQA", ["Brain", "Liver"], i % 2, None) for i in range(3)]
    items += [(s, "OmniMedVQA", ["a", "b", "c"], 0, None) for s in ("CT(Computed Tomography)", "X-Ray")]
    folder = tmp_path / "huatuo"
    folder.mkdir()
    write_huatuo(folder, items)
    p = load_profile("paper", overrides={"data.source": "huatuo-eval", "data.path": str(folder),
                                         "data.train_size": 2, "data.test_per_modality": 1})
    train, test = experiments.make_splits(p)
    assert set(train["modality"]) == {"MRI"} and sorted(test["modality"]) == ["CT", "MRI", "X-ray"]
    assert set(train["id"]).isdisjoint(test["id"])
