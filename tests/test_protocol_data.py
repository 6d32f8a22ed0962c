"""The data protocols of the two papers: the modality never comes from the label, Zhu's pool keeps every row,
train and test are disjoint by image, and MedVLM-R1's published test items are used as published."""

import csv
import warnings
from collections import Counter

import datasets
import pytest

from medrl_lib.data import fixtures, medvlm_r1_test_items, medvlm_r1_test_source
from medrl_lib.data.huatuo import load_huatuo_eval
from medrl_lib.data.pmc_vqa import load_pmc_vqa
from medrl_lib.data.schema import FEATURES, OTHER_MODALITY, DataError, load_summary, validate_rows
from medrl_lib.data.splits import image_keys, medvlm_r1_published_split, zhu_split, zhu_split_files

PMC_HEADER = list(fixtures.PMC_HEADER)


def quiet(load, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(*args, **kwargs)


# ----------------------------------------------------------------------------------------------------------------------
# the modality of a PMC-VQA row: from the question alone

# (question, options) -> the modality, whichever option is gold
MODALITY_CASES = [
    # the gold option may say "CT", the question names nothing: "other"
    ("Which imaging technique was used?", ["CT", "Ultrasound", "PET", "Angiography"], OTHER_MODALITY),
    # a single modality among the options is no evidence either (it may be a distractor)
    ("What does the image show?", ["Mass on CT", "Normal", "Cyst", "Edema"], OTHER_MODALITY),
    # the question names MRI; an option naming CT does not change it
    ("What does the T2-weighted image show?", ["CT artefact", "Edema", "Infarct", "Normal"], "MRI"),
    # the question names CT
    ("Which organ is enlarged on this CT scan?", ["Liver", "Spleen", "Kidney"], "CT"),
    # the question names X-ray, an option names MRI
    ("What is seen on the chest radiograph?", ["Nodule", "MRI artefact"], "X-ray"),
    # the question names two modalities: ambiguous, "other"
    ("Compare the CT and the MRI: which lesion grew?", ["Left", "Right"], OTHER_MODALITY),
]


def test_the_label_is_never_read_for_the_modality(tmp_path):
    # every case is written once per gold position (Answer_label A, B, ...): the modality must not change
    rows, expected = [], []
    for c, (question, options, modality) in enumerate(MODALITY_CASES):
        for gold in range(len(options)):
            choices = [f"{'ABCD'[i]}:{o}" for i, o in enumerate(options)] + [""] * (4 - len(options))
            rows.append((f"PMC{c}_fig.jpg", question, options[gold], *choices, "ABCD"[gold]))
            expected.append((c, gold, modality))
    with open(tmp_path / "train_2.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([PMC_HEADER, *rows])
    (tmp_path / "figures").mkdir()
    png = fixtures._items(fixtures.generate(fixtures.SyntheticConfig(n_items=1)))[0]["png"]
    for c in range(len(MODALITY_CASES)):
        (tmp_path / "figures" / f"PMC{c}_fig.jpg").write_bytes(png)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no row is dropped: the rows without modality are kept
        ds = load_pmc_vqa(str(tmp_path))
    validate_rows(ds, "train_2.csv")  # "other" is a valid modality
    assert len(ds) == len(rows)
    # per case, one modality whatever the gold position
    per_case: dict[int, set[str]] = {}
    for (c, _, _), modality in zip(expected, ds["modality"]):
        per_case.setdefault(c, set()).add(modality)
    assert {c: len(ms) for c, ms in per_case.items()} == dict.fromkeys(range(len(MODALITY_CASES)), 1)
    got = [(c, "ABCD".index(answer), modality)
           for (c, _, _), answer, modality in zip(expected, ds["answer"], ds["modality"])]
    assert got == expected


@pytest.mark.parametrize(
    "modality, valid",
    [
        ("MRI", True),  # the papers' modalities
        ("X-ray", True),
        (OTHER_MODALITY, True),  # a real row of another or unknown modality
        ("PET", False),  # anything else is an error
        ("", False),
    ],
)
def test_validate_rows_accepts_other(modality, valid):
    row = {"id": "r-0", "image": {"bytes": b"x", "path": None}, "question": "q?", "options": ["a", "b"],
           "answer": "A", "modality": modality, "source": "t", "facts": "{}", "image_path": "r-0.png"}
    features = datasets.Features({**FEATURES, "image": datasets.Image(decode=False)})
    ds = datasets.Dataset.from_list([row], features=features)
    if valid:
        validate_rows(ds, "rows")
    else:
        with pytest.raises(DataError, match="field 'modality'"):
            validate_rows(ds, "rows")


# ----------------------------------------------------------------------------------------------------------------------
# Zhu's pool: every row kept; train from train_2.csv, test from test_2.csv, disjoint by figure


@pytest.fixture(scope="module")
def pmc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pmc")
    planted = fixtures.write_pmc_vqa(folder)
    train_ds = quiet(load_pmc_vqa, str(folder), csv="train_2.csv")
    test_ds = quiet(load_pmc_vqa, str(folder), csv="test_2.csv")
    return planted, train_ds, test_ds


@pytest.mark.parametrize("csv_name", fixtures.PMC_CSV_FILES)
def test_rows_without_modality_are_kept(pmc, csv_name):
    planted, train_ds, test_ds = pmc
    ds = train_ds if csv_name == "train_2.csv" else test_ds
    # only the malformed rows are dropped: the rows whose question names no modality are kept as "other"
    assert load_summary(ds)["dropped"]["unknown_modality"] == 0
    assert Counter(ds["modality"])["other"] == len(planted["other_rows"][csv_name]) > 0
    assert len(ds) == planted["rows"][csv_name] - len(planted["planted_rows"][csv_name])


def rows_on_shared_figures(planted, ds):
    """The number of rows of ``ds`` whose figure is one of the figures both fixture files ask about."""
    shared = set(planted["shared_figures"])
    return sum(1 for p in ds["image_path"] if p in shared)


@pytest.mark.parametrize(
    "draw, seed",
    [
        ("nearly all", 0),  # nearly all the test file: most shared figures are drawn, their training rows excluded
        ("small", 1),  # a small draw
        ("all", 2),  # the whole test file
    ],
)
def test_zhu_split_files_train_from_train_test_from_test_disjoint_by_image(pmc, draw, seed):
    planted, train_ds, test_ds = pmc
    # the most training rows any test draw leaves: those not on a shared figure
    n_left = len(train_ds) - rows_on_shared_figures(planted, train_ds)
    n_train, n_test = {
        "nearly all": (n_left, len(test_ds) - len(planted["shared_figures"])),
        "small": (len(train_ds) // 2, len(test_ds) // 4),
        "all": (n_left, len(test_ds)),
    }[draw]
    train, test = zhu_split_files(train_ds, test_ds, n_train=n_train, n_test=n_test, seed=seed)
    assert (len(train), len(test)) == (n_train, n_test)
    assert all(i.startswith("pmc-train_2-") for i in train["id"])  # from the training file
    assert all(i.startswith("pmc-test_2-") for i in test["id"])  # from the test file
    test_figures = set(test["image_path"])
    assert test_figures.isdisjoint(train["image_path"])
    # the excluded training rows are exactly those that show a drawn test figure
    excluded = sum(1 for p in train_ds["image_path"] if p in test_figures)
    note = load_summary(train)["split"]
    assert note == load_summary(test)["split"]
    assert (note["name"], note["train_rows_sharing_a_test_image"], note["train_file"], note["test_file"]) == (
        "zhu-files", excluded, "train_2.csv", "test_2.csv")
    # the same seed gives the same split
    again = zhu_split_files(train_ds, test_ds, n_train=n_train, n_test=n_test, seed=seed)
    assert (list(again[0]["id"]), list(again[1]["id"])) == (list(train["id"]), list(test["id"]))


def test_zhu_split_files_excludes_the_shared_figures(pmc):
    planted, train_ds, test_ds = pmc
    # with the whole test file drawn, every shared figure's training rows are excluded
    shared = set(planted["shared_figures"])
    n_shared_rows = rows_on_shared_figures(planted, train_ds)
    assert n_shared_rows >= len(planted["shared_figures"])
    train, _ = zhu_split_files(train_ds, test_ds, n_train=len(train_ds) - n_shared_rows, n_test=len(test_ds))
    assert load_summary(train)["split"]["train_rows_sharing_a_test_image"] == n_shared_rows
    assert shared.isdisjoint(train["image_path"])
    # one more training row than are left: the message gives the counts
    with pytest.raises(ValueError, match=rf"{n_shared_rows} of which show an image of the {len(test_ds)} test rows;"
                                         rf" the {len(train_ds) - n_shared_rows} left are fewer than n_train"):
        zhu_split_files(train_ds, test_ds, n_train=len(train_ds) - n_shared_rows + 1, n_test=len(test_ds))
    # a test draw larger than the test file
    with pytest.raises(ValueError, match=rf"the test dataset has {len(test_ds)} rows, fewer than n_test"):
        zhu_split_files(train_ds, test_ds, n_train=1, n_test=len(test_ds) + 1)
    # the same file on both sides: shared ids
    with pytest.raises(ValueError, match="share"):
        zhu_split_files(train_ds, train_ds, n_train=1, n_test=1)


def rows_on_images(images):
    """A dataset with one row per entry of ``images`` (its image_path; "" = an image of its own)."""
    n = len(images)
    return datasets.Dataset.from_dict(
        {"id": [f"r-{i:02d}" for i in range(n)], "image": [{"bytes": b"x", "path": None}] * n,
         "question": ["q?"] * n, "options": [["a", "b"]] * n, "answer": ["A"] * n, "modality": ["CT"] * n,
         "source": ["t"] * n, "facts": ["{}"] * n, "image_path": list(images)},
        features=datasets.Features({**FEATURES, "image": datasets.Image(decode=False)}),
    )


@pytest.mark.parametrize(
    "images, n_train, n_test",
    [
        (["a", "a", "a", "b", "b", "c", "d", "d", "e", "f"], 4, 3),  # questions share figures
        (["a"] * 3 + ["images/b", "b", "./images/b"] + list("cdefgh"), 5, 4),  # one figure under several paths
        ([""] * 6 + ["a", "a"], 4, 3),  # rows without image path are images of their own
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_zhu_split_from_one_file_is_disjoint_by_image(images, n_train, n_test, seed):
    ds = rows_on_images(images)
    train, test = zhu_split(ds, n_train=n_train, n_test=n_test, seed=seed)
    assert (len(train), len(test)) == (n_train, n_test)
    keys_train, keys_test = set(image_keys(train)) - {None}, set(image_keys(test)) - {None}
    assert keys_train.isdisjoint(keys_test)


@pytest.mark.parametrize(
    "images, n_train, n_test, match",
    [
        # one figure only: once a test row is on it, every other row is excluded
        (["a"] * 4, 1, 1, r"after the 1 test rows, 0 rows of the dataset's 4 show no test image \(3 share one\), fewer"
                          r" than n_train = 1"),
        # more rows asked than the dataset has: the size message comes first
        (["a", "b"], 2, 1, r"the dataset has 2 rows, fewer than n_train \+ n_test = 2 \+ 1 = 3"),
    ],
)
def test_zhu_split_too_few_rows_outside_the_test_images(images, n_train, n_test, match):
    with pytest.raises(ValueError, match=match):
        zhu_split(rows_on_images(images), n_train=n_train, n_test=n_test)


# ----------------------------------------------------------------------------------------------------------------------
# MedVLM-R1's published test items


def test_medvlm_r1_test_items_are_the_published_900():
    items = medvlm_r1_test_items()
    assert len(items) == 900
    assert [it["index"] for it in items] == list(range(900))
    # 300 per modality, in the published order MRI, CT, X-ray
    assert [it["modality"] for it in items] == ["MRI"] * 300 + ["CT"] * 300 + ["X-ray"] * 300
    # every item has an image path (as published, "images/<name>") and a question
    assert all(it["image"].startswith("images/") and len(it["image"]) > len("images/") for it in items)
    assert all(it["question"].strip() for it in items)
    assert len({(it["image"], it["question"]) for it in items}) == 900  # one row each
    assert items[0] == {"index": 0, "image": "images/brain002206.png", "question": "What is apparent in this image?",
                        "modality": "MRI"}
    source = medvlm_r1_test_source()
    assert (source["repository"], source["file"], source["commit"]) == (
        "https://github.com/JZPeterPan/MedVLM-R1", "MRI_CT_XRAY_300each_dataset.json",
        "2eee4210b25b149dcfa68513eb4682ac63b029d2")
    # a fresh list each call: a caller's change does not reach the next one
    items[0]["image"] = "changed"
    assert medvlm_r1_test_items()[0]["image"] == "images/brain002206.png"


# a small fake published list, in a mixed order of modalities
PUBLISHED = [
    {"index": 0, "image": "images/pub_ct_0.png", "question": "What is apparent in this image?", "modality": "CT"},
    {"index": 1, "image": "images/pub_mri_0.png", "question": "What can be observed in this image?", "modality": "MRI"},
    {"index": 2, "image": "images/pub_xray_0.png", "question": "What is apparent in this image?", "modality": "X-ray"},
    {"index": 3, "image": "images/pub_mri_1.png", "question": "What is apparent in this image?", "modality": "MRI"},
    {"index": 4, "image": "images/pub_ct_1.png", "question": "Which organ is shown?", "modality": "CT"},
]


@pytest.fixture(scope="module")
def hua(tmp_path_factory):
    folder = tmp_path_factory.mktemp("huatuo")
    planted = fixtures.write_huatuo_eval(folder, published=PUBLISHED)
    ds = quiet(load_huatuo_eval, str(folder))
    return planted, ds


def strip_prefix_and_pad(item):
    return {**item, "image": item["image"].removeprefix("images/"), "question": f"  {item['question']}\n"}


@pytest.mark.parametrize(
    "items",
    [
        PUBLISHED,  # as written
        [strip_prefix_and_pad(it) for it in PUBLISHED],  # "x.png" for "images/x.png", whitespace around questions
        [{k: v for k, v in it.items() if k in ("image", "question")} for it in PUBLISHED],  # no modality, no index
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_medvlm_r1_published_split_on_fixtures(hua, items, seed):
    planted, ds = hua
    train, test = medvlm_r1_published_split(ds, n_train_mri=8, seed=seed, test_items=items)
    # the test rows are the published items' rows, in the published order
    assert list(test["id"]) == [f"huatuo-{i:06d}" for i in planted["published_rows"]]
    assert list(test["modality"]) == [it["modality"] for it in PUBLISHED]
    assert list(test["question"]) == [it["question"] for it in PUBLISHED]
    # 8 MRI training rows, none a test row, none on a test image (the planted second questions are skipped)
    assert len(train) == 8 and set(train["modality"]) == {"MRI"}
    assert set(train["id"]).isdisjoint(test["id"])
    assert set(image_keys(train)).isdisjoint(image_keys(test))
    twins = {f"huatuo-{i:06d}" for i in planted["published_image_twins"]}
    assert twins and twins.isdisjoint(train["id"])
    note = load_summary(train)["split"]
    assert (note["train_rows_sharing_a_test_image"], note["ambiguous_test_items"]) == (len(twins), 0)
    # the seed alone decides the training draw
    again = medvlm_r1_published_split(ds, n_train_mri=8, seed=seed, test_items=items)
    assert list(again[0]["id"]) == list(train["id"])


def test_medvlm_r1_published_split_seeds_differ(hua):
    _, ds = hua
    a, _ = medvlm_r1_published_split(ds, n_train_mri=8, seed=0, test_items=PUBLISHED)
    b, _ = medvlm_r1_published_split(ds, n_train_mri=8, seed=1, test_items=PUBLISHED)
    assert list(a["id"]) != list(b["id"])


@pytest.mark.parametrize(
    "items, n_train_mri, match",
    [
        # an item the data does not hold: named, with the count
        ([*PUBLISHED, {"index": 5, "image": "images/nowhere.png", "question": "Where?", "modality": "MRI"}], 8,
         r"1 of the 6 published test items are not among the \d+ rows .*item 5 \(image 'images/nowhere\.png',"
         r" question 'Where\?'\)"),
        # the right image with another question is not the item
        ([{**PUBLISHED[0], "question": "Another question?"}], 8, r"1 of the 1 published test items are not among"),
        # an item whose row is of another modality
        ([{**PUBLISHED[0], "modality": "MRI"}], 8, r"item 0 is 'MRI', its row 'huatuo-\d+' 'CT'"),
        # the same item twice
        ([PUBLISHED[0], PUBLISHED[0]], 8, r"1 rows are named by more than one test item"),
        # more MRI training rows than are left once the test rows and their images are set aside ({twins}: the
        # planted second questions on the published MRI images)
        (PUBLISHED, 100, r"MRI rows are neither test rows nor show a test image \({twins} more show one\), fewer"
                         r" than n_train_mri=100"),
    ],
)
def test_medvlm_r1_published_split_errors(hua, items, n_train_mri, match):
    planted, ds = hua
    match = match.replace("{twins}", str(len(planted["published_image_twins"])))
    with pytest.raises(ValueError, match=match):
        medvlm_r1_published_split(ds, n_train_mri=n_train_mri, test_items=items)


def test_medvlm_r1_published_split_names_the_real_items_missing_from_fixtures(hua):
    # the fixture files do not hold the real 900 items: every one is missing, and the message says so
    _, ds = hua
    with pytest.raises(ValueError, match=r"900 of the 900 published test items are not among .* e\.g\. item 0 \(image"
                                         r" 'images/brain002206\.png'"):
        medvlm_r1_published_split(ds)


def rows_with_answers(rows):
    """A dataset with a loader summary, one row per ``(image_path, question, options, answer, modality)``."""
    n = len(rows)
    ds = datasets.Dataset.from_dict(
        {"id": [f"r-{i:02d}" for i in range(n)], "image": [{"bytes": b"x", "path": None}] * n,
         "question": [r[1] for r in rows], "options": [r[2] for r in rows], "answer": [r[3] for r in rows],
         "modality": [r[4] for r in rows], "source": ["t"] * n, "facts": ["{}"] * n,
         "image_path": [r[0] for r in rows]},
        features=datasets.Features({**FEATURES, "image": datasets.Image(decode=False)}),
    )
    ds.info.description = '{"file": "hand-made.json", "rows_read": %d, "rows_kept": %d}' % (n, n)
    return ds


ITEM = {"index": 7, "image": "images/pub.png", "question": "What is shown?", "modality": "CT"}
TRAINING_ROWS = [(f"images/mri_{i}.png", "Which organ?", ["Brain", "Liver"], "A", "MRI") for i in range(3)]


def test_medvlm_r1_published_split_takes_the_first_of_identical_copies():
    # the published item's row is in the data twice, the same question on the same image with the same options
    # and answer: the first copy is the test row, and the item is counted
    copy = ("images/pub.png", "What is shown?", ["CT", "MRI"], "A", "CT")
    ds = rows_with_answers([*TRAINING_ROWS, copy, copy])
    train, test = medvlm_r1_published_split(ds, n_train_mri=len(TRAINING_ROWS), test_items=[ITEM])
    assert list(test["id"]) == ["r-03"]
    note = load_summary(test)["split"]
    assert note["ambiguous_test_items"] == 1 and note == load_summary(train)["split"]
    # the copy under the item's whole path wins over the other: no ambiguity
    ds = rows_with_answers([*TRAINING_ROWS, ("other/pub.png", *copy[1:]), copy])
    _, test = medvlm_r1_published_split(ds, n_train_mri=len(TRAINING_ROWS), test_items=[ITEM])
    assert list(test["id"]) == ["r-04"] and load_summary(test)["split"]["ambiguous_test_items"] == 0


@pytest.mark.parametrize(
    "options, answer",
    [
        (["CT", "MRI"], "B"),  # another answer
        (["CT", "MRI", "X-ray"], "A"),  # other options
    ],
)
def test_medvlm_r1_published_split_rejects_differing_candidates(options, answer):
    # two rows match the item (same image, same question) but differ: which one was published cannot be told
    rows = [("pub.png", "What is shown?", ["CT", "MRI"], "A", "CT"),
            ("pub.png", " What is shown? ", options, answer, "CT")]
    ds = rows_with_answers([*TRAINING_ROWS, *rows])
    with pytest.raises(DataError, match=r"item 7 \(image 'images/pub\.png', question 'What is shown\?'\) matches 2 rows"
                                        r" that differ in options or answer \(r-03, r-04\)"):
        medvlm_r1_published_split(ds, n_train_mri=1, test_items=[ITEM])
