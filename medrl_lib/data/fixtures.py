r"""Small data files in the published layouts of PMC-VQA v2 and the HuatuoGPT-Vision evaluation data, with the
quirks of the real files, for tests and for dry runs of the real-data pipeline without the hub.

The images are real PNG (Huatuo) or JPEG (PMC-VQA) files drawn by the synthetic radiology generator
(:func:`medrl_lib.data.synthetic.generate`), so that every kept row's gold answer is right for its image.
Everything is deterministic given ``seed``.

:func:`write_pmc_vqa` writes, into a folder:

- ``train_2.csv`` and ``test_2.csv`` with the published columns :data:`PMC_HEADER`, the choices with ``"A:"``
  prefixes and empty trailing choices where a question has fewer than four, ``Answer`` the gold choice's
  text and ``Answer_label`` its letter;
- ``images_2.zip``, the one archive of both files, whose members are ``images_2/<Figure_path>``
  (``Figure_path`` like ``PMC7000012_Fig6_12.jpg``), as the published archive extracts to ``images_2/``.

Each CSV file has ``n_per_modality`` good rows of each of MRI, CT and X-ray. Their questions name the
modality so that :func:`~medrl_lib.data.pmc_vqa.infer_modality` places them ("In this MRI, ...", "On this
CT scan, ...", "On the chest X-ray, ..." where the synthetic question does not already say "in this CT
image"); the questions asking which modality was used are left as they are, their gold option names it.
About one good row in three is a second question on a figure that another row already asks about
(PMC-VQA has about 1.5 questions per figure): ``n_per_modality - n_per_modality // 3`` figures per modality
carry the ``n_per_modality`` good rows. To these come, per file, one row of each kept quirk of
:data:`PMC_KEPT_QUIRKS` (kept by the loader: stray ``\u00a0`` in choices, answer text and label; no
``Answer_label``, the answer text names the gold choice; an answer text that is no choice's text, the label
decides) and one malformed row of each reason of :data:`medrl_lib.data.pmc_vqa.DROP_REASONS`, all shuffled
into a deterministic order.

:func:`write_huatuo_eval` writes ``medical_multimodel_evaluation_data.json`` (a list of objects with
``question``, ``options`` (texts without letters), ``answer`` (the gold option's text), ``image`` (a list of
one path ``images/<name>.png``), ``dataset`` and ``subset``, as published) and ``images.zip`` (members
``images/<name>.png``): enough OmniMedVQA rows for MedVLM-R1's split (``n_train_mri + n_test_per_modality +
spare`` MRI rows, ``n_test_per_modality + spare`` CT and X-ray rows) and the objects of
:data:`HUATUO_PLANTED` that the loader drops: other benchmarks' objects without ``subset``, other subsets,
``answer: "?"``, empty options, open questions, a missing image, a non-object entry, ...

Both return what they planted, so that a test can check a loader's counts against it::

    {"files": [paths written],
     "good_rows": {"MRI": n, "CT": n, "X-ray": n},  # rows the loader keeps, per modality (per CSV file)
     "malformed": {reason: count},                   # every drop reason of the loader, 0 included (per CSV file)
     "planted_rows": {...},                          # row index -> drop reason (PMC-VQA: per CSV file name)
     ...}

For PMC-VQA both CSV files get the same plan, so ``good_rows`` and ``malformed`` hold for each of them;
``planted_rows`` and ``kept_quirks`` (row index -> quirk) are keyed by file name. The counts are those of a
load with the loaders' defaults (``unknown_modality="drop"``, ``datasets_filter=("OmniMedVQA",)``).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image

from medrl_lib.data import huatuo, pmc_vqa
from medrl_lib.data.pmc_vqa import infer_modality
from medrl_lib.data.schema import MODALITIES
from medrl_lib.data.synthetic import OPTION_POOLS, SyntheticConfig, generate

PMC_HEADER: tuple[str, ...] = (
    "Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label",
)
"""The columns of the published PMC-VQA v2 CSV files, in their order."""

PMC_CSV_FILES: tuple[str, ...] = ("train_2.csv", "test_2.csv")
"""The CSV files :func:`write_pmc_vqa` writes."""

PMC_ARCHIVE = "images_2.zip"
"""The image archive of both PMC-VQA v2 CSV files; its members are ``images_2/<Figure_path>``."""

PMC_KEPT_QUIRKS: tuple[str, ...] = ("stray_nbsp", "no_label", "answer_not_a_choice")
"""The quirky rows the PMC-VQA loader keeps (one of each per CSV file): ``\u00a0`` around choices, answer
text and label; an empty ``Answer_label`` (the answer text names the gold choice); an answer text equal to no
choice (the label decides)."""

MODALITY_PREFIX: dict[str, str] = {"MRI": "In this MRI, ", "CT": "On this CT scan, ", "X-ray": "On the chest X-ray, "}
"""How a PMC-VQA question that does not name its modality is made to name it."""

HUATUO_SUBSETS: dict[str, str] = {modality: subset for subset, modality in huatuo.SUBSET_MODALITIES.items()}
"""The published ``subset`` string of each modality."""

HUATUO_PLANTED: dict[str, int] = {
    huatuo.NOT_AN_OBJECT: 1,
    huatuo.MISSING_SUBSET: 3,
    huatuo.OTHER_SUBSET: 2,
    huatuo.MISSING_DATASET: 1,
    huatuo.DATASET_FILTER: 1,
    huatuo.EMPTY_QUESTION: 1,
    huatuo.OPEN_QUESTION: 2,
    huatuo.EMPTY_OPTIONS: 1,
    huatuo.BAD_OPTIONS: 2,
    huatuo.UNKNOWN_ANSWER: 2,
    huatuo.EMPTY_IMAGE: 1,
    huatuo.MISSING_IMAGE: 1,
}
"""How many objects :func:`write_huatuo_eval` plants for each drop reason of the Huatuo loader."""

_SECOND_QUESTION = "With which imaging technique was this figure acquired?"
_NO_GOLD_ANSWER = "None of the above"  # the text of no option of any synthetic pool
_STAIN_OPTIONS = ["Nuclear", "Cytoplasmic", "Membranous", "Absent"]
_ZIP_TIME = (2023, 5, 1, 0, 0, 0)


def write_pmc_vqa(folder: str | Path, *, n_per_modality: int = 12, seed: int = 0) -> dict[str, Any]:
    """Write ``train_2.csv``, ``test_2.csv`` and ``images_2.zip`` into ``folder`` (created if needed); return
    what was planted (see the module docstring).

    >>> import tempfile
    >>> planted = write_pmc_vqa(tempfile.mkdtemp(), n_per_modality=3)
    >>> planted["good_rows"], planted["malformed"]["label_contradicts_answer"]
    ({'MRI': 4, 'CT': 4, 'X-ray': 4}, 1)
    """
    if n_per_modality < 0:
        raise ValueError(f"n_per_modality must be non-negative, got {n_per_modality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    planted_rows: dict[str, dict[int, str]] = {}
    kept_quirks: dict[str, dict[int, str]] = {}
    files = []
    for k, csv_name in enumerate(PMC_CSV_FILES):
        rows, kinds = _pmc_rows(csv_name, k, n_per_modality, seed, images)
        order = np.random.default_rng([seed, zlib.crc32(csv_name.encode())]).permutation(len(rows))
        rows = [rows[i] for i in order]
        kinds = [kinds[i] for i in order]
        planted_rows[csv_name] = {i: kind for i, kind in enumerate(kinds) if kind in pmc_vqa.DROP_REASONS}
        kept_quirks[csv_name] = {i: kind for i, kind in enumerate(kinds) if kind in PMC_KEPT_QUIRKS}
        path = folder / csv_name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(PMC_HEADER)
            writer.writerows(rows)
        files.append(str(path))
    archive = folder / PMC_ARCHIVE
    _write_zip(archive, Path(PMC_ARCHIVE).stem, images)
    files.append(str(archive))
    quirk_modalities = [MODALITIES[i % len(MODALITIES)] for i in range(len(PMC_KEPT_QUIRKS))]
    good = {m: n_per_modality + quirk_modalities.count(m) for m in MODALITIES}
    return {
        "files": files,
        "good_rows": good,
        "malformed": dict.fromkeys(pmc_vqa.DROP_REASONS, 1),
        "planted_rows": planted_rows,
        "kept_quirks": kept_quirks,
        "rows": {name: sum(good.values()) + len(pmc_vqa.DROP_REASONS) for name in PMC_CSV_FILES},
        "figures": len(images),
    }


def write_huatuo_eval(
    folder: str | Path,
    *,
    n_train_mri: int = 8,
    n_test_per_modality: int = 4,
    seed: int = 0,
    spare: int = 2,
) -> dict[str, Any]:
    """Write ``medical_multimodel_evaluation_data.json`` and ``images.zip`` into ``folder`` (created if needed);
    return what was planted (see the module docstring).

    >>> import tempfile
    >>> planted = write_huatuo_eval(tempfile.mkdtemp(), n_train_mri=2, n_test_per_modality=1, spare=0)
    >>> planted["good_rows"], planted["malformed"]["missing_subset"]
    ({'MRI': 3, 'CT': 1, 'X-ray': 1}, 3)
    """
    for name, value in (("n_train_mri", n_train_mri), ("n_test_per_modality", n_test_per_modality), ("spare", spare)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = {m: n_test_per_modality + spare + (n_train_mri if m == "MRI" else 0) for m in MODALITIES}
    bad_kinds = [reason for reason, n in HUATUO_PLANTED.items() for _ in range(n)]
    # the malformed objects that need an otherwise valid item, spread over the modalities in turn
    needs_item = [r for r in bad_kinds if r != huatuo.NOT_AN_OBJECT]
    extra = {m: sum(1 for i in range(len(needs_item)) if MODALITIES[i % len(MODALITIES)] == m) for m in MODALITIES}
    items: dict[str, list[dict[str, Any]]] = {}
    images: dict[str, bytes] = {}
    for m in MODALITIES:
        ds = generate(SyntheticConfig(n_items=good[m] + extra[m], modalities=(m,), min_options=2, max_options=6,
                                      seed=seed, id_prefix=f"huatuo-{m}"))
        items[m] = _items(ds)
    objs: list[Any] = []
    kinds: list[str] = []
    for m in MODALITIES:
        for i, item in enumerate(items[m][: good[m]]):
            objs.append(_huatuo_obj(item, f"omnimedvqa_{_slug(m)}_{i:05d}.png", m, images))
            kinds.append("good")
    for j, reason in enumerate(needs_item):
        m = MODALITIES[j % len(MODALITIES)]
        item = items[m][good[m] + j // len(MODALITIES)]
        obj = _huatuo_obj(item, f"planted_{j:03d}.png", m, images)
        objs.append(_break_huatuo(obj, reason, sum(1 for r in needs_item[:j] if r == reason), images))
        kinds.append(reason)
    objs.append("<a stray string where an object belongs>")
    kinds.append(huatuo.NOT_AN_OBJECT)
    order = np.random.default_rng([seed, zlib.crc32(b"huatuo")]).permutation(len(objs))
    objs = [objs[i] for i in order]
    kinds = [kinds[i] for i in order]
    json_path = folder / huatuo.JSON_FILE
    json_path.write_text(json.dumps(objs, ensure_ascii=False, indent=1), encoding="utf-8")
    archive = folder / huatuo.IMAGE_ARCHIVE
    _write_zip(archive, "images", {name.removeprefix("images/"): data for name, data in images.items()})
    return {
        "files": [str(json_path), str(archive)],
        "good_rows": good,
        "malformed": {reason: HUATUO_PLANTED.get(reason, 0) for reason in huatuo.DROP_REASONS},
        "planted_rows": {i: kind for i, kind in enumerate(kinds) if kind != "good"},
        "rows": len(objs),
    }


def _items(ds: datasets.Dataset) -> list[dict[str, Any]]:
    """The rows of a synthetic dataset as dicts, the image as PNG bytes (not decoded)."""
    rows = ds.cast_column("image", datasets.Image(decode=False)).to_list()
    for row in rows:
        row["png"] = row.pop("image")["bytes"]
        row["gold"] = "ABCDEF".index(row["answer"])
    return rows


def _pmc_rows(
    csv_name: str, k: int, n_per_modality: int, seed: int, images: dict[str, bytes]
) -> tuple[list[list[str]], list[str]]:
    """The rows of one PMC-VQA CSV file, in plan order, and the kind of each ("good", a quirk, a reason);
    the images of its figures are added to ``images``."""
    n_figures = n_per_modality - n_per_modality // 3
    kinds_extra = [*PMC_KEPT_QUIRKS, *pmc_vqa.DROP_REASONS]
    per_modality = -(-len(kinds_extra) // len(MODALITIES))
    rng = np.random.default_rng([seed, k])
    ds = generate(SyntheticConfig(n_items=len(MODALITIES) * (n_figures + per_modality), modalities=MODALITIES,
                                  min_options=3, max_options=4, seed=seed, id_prefix=Path(csv_name).stem))
    items = _items(ds)
    block = n_figures + per_modality
    counter = iter(range(10**6))

    def figure(item: dict[str, Any], store: bool = True) -> str:
        j = next(counter)
        name = f"PMC{7_000_000 + 100_000 * k + j:07d}_Fig{j % 7 + 1}_{j}.jpg"
        if store:
            images[name] = _jpeg(item["png"])
        return name

    rows: list[list[str]] = []
    kinds: list[str] = []
    for mi, m in enumerate(MODALITIES):
        figures = []
        for item in items[mi * block : mi * block + n_figures]:
            name = figure(item)
            figures.append(name)
            rows.append(_pmc_row(name, _pmc_question(item["question"], item["options"][item["gold"]], m),
                                 item["options"], item["gold"]))
            kinds.append("good")
        for name in figures[: n_per_modality - n_figures]:  # a second question on the same figure
            options = [m, *(o for o in OPTION_POOLS["modality"] if o != m)][:4]
            options = [options[i] for i in rng.permutation(4)]
            rows.append(_pmc_row(name, _SECOND_QUESTION, options, options.index(m)))
            kinds.append("good")
    for i, kind in enumerate(kinds_extra):
        m = MODALITIES[i % len(MODALITIES)]
        item = items[MODALITIES.index(m) * block + n_figures + i // len(MODALITIES)]
        name = figure(item, store=kind not in (pmc_vqa.MISSING_IMAGE, pmc_vqa.EMPTY_IMAGE))
        rows.append(_pmc_special(kind, name, item, m, rng))
        kinds.append(kind)
    return rows, kinds


def _pmc_question(question: str, gold_text: str, modality: str) -> str:
    """``question``, prefixed so that it names ``modality`` unless it (with the gold option) already does."""
    if infer_modality(f"{question}\n{gold_text}") != modality:
        question = MODALITY_PREFIX[modality] + question[0].lower() + question[1:]
    assert infer_modality(f"{question}\n{gold_text}") == modality, question
    return question


def _pmc_row(figure: str, question: str, options: Sequence[str], gold: int) -> list[str]:
    """A well-formed CSV row: "A:"-prefixed choices, empty trailing ones, the answer text and the label."""
    choices = [f"{letter}:{text}" for letter, text in zip("ABCD", options)] + [""] * (4 - len(options))
    return [figure, question, options[gold], *choices, "ABCD"[gold]]


def _pmc_special(kind: str, figure: str, item: dict[str, Any], modality: str, rng: np.random.Generator) -> list[str]:
    """The row of a kept quirk or of a drop reason, built from the synthetic ``item``."""
    options, gold = list(item["options"]), item["gold"]
    question = _pmc_question(item["question"], options[gold], modality)
    row = _pmc_row(figure, question, options, gold)
    letters = "ABCD"
    if kind == "stray_nbsp":  # kept: "A:\u00a0text", "text\u00a0", "B\u00a0"
        row[3:3 + len(options)] = [f"{letters[i]}:\u00a0{t}" for i, t in enumerate(options)]
        row[2], row[7] = f"{options[gold]}\u00a0", f"{letters[gold]}\u00a0"
    elif kind == "no_label":  # kept: the answer text names the gold choice
        row[7] = ""
    elif kind == "answer_not_a_choice":  # kept: the answer text is no choice's text, the label decides
        row[2] = f"The answer is {options[gold]}."
    elif kind == pmc_vqa.EMPTY_QUESTION:
        row[1] = "\u00a0"
    elif kind == pmc_vqa.EMPTY_IMAGE:
        row[0] = ""
    elif kind == pmc_vqa.FOREIGN_CHOICE_PREFIX:  # column "Choice B" holds "C:text"
        row[4] = f"C:{options[1]}"
    elif kind == pmc_vqa.TOO_FEW_OPTIONS:
        row[2:8] = [options[gold], f"A:{options[gold]}", "", "", "", "A"]
    elif kind == pmc_vqa.LABEL_NOT_IN_CHOICES:  # the label names the empty choice D
        row[6], row[7] = "", "D"
    elif kind == pmc_vqa.LABEL_CONTRADICTS_ANSWER:  # the answer text is another choice's
        row[2] = options[(gold + 1) % len(options)]
    elif kind == pmc_vqa.NO_GOLD:
        row[2], row[7] = _NO_GOLD_ANSWER, ""
    elif kind == pmc_vqa.UNKNOWN_MODALITY_REASON:
        gold = int(rng.integers(len(_STAIN_OPTIONS)))
        row = _pmc_row(figure, "What staining pattern does this histology section show?", _STAIN_OPTIONS, gold)
    elif kind != pmc_vqa.MISSING_IMAGE:  # missing_image: a good row whose figure is not in the archive
        raise ValueError(f"unknown kind of row {kind!r}")
    return row


def _huatuo_obj(item: dict[str, Any], name: str, modality: str, images: dict[str, bytes]) -> dict[str, Any]:
    """A well-formed OmniMedVQA object of the synthetic ``item``; its image is added to ``images``."""
    path = f"images/{name}"
    images[path] = item["png"]
    return {
        "question": item["question"],
        "options": list(item["options"]),
        "answer": item["options"][item["gold"]],
        "image": [path],
        "dataset": "OmniMedVQA",
        "subset": HUATUO_SUBSETS[modality],
    }


def _break_huatuo(obj: dict[str, Any], reason: str, nth: int, images: dict[str, bytes]) -> dict[str, Any]:
    """``obj`` made to be dropped for ``reason``; ``nth`` picks among the variants of a reason planted more than
    once."""
    if reason == huatuo.MISSING_SUBSET:  # another benchmark's object: no subset field
        obj = {k: v for k, v in obj.items() if k != "subset"}
        obj["dataset"] = ("VQA-RAD", "SLAKE", "PathVQA")[nth % 3]
    elif reason == huatuo.OTHER_SUBSET:
        obj["subset"] = ("Fundus Photography", "Ultrasound", "Microscopy Images")[nth % 3]
    elif reason == huatuo.MISSING_DATASET:
        del obj["dataset"]
    elif reason == huatuo.DATASET_FILTER:
        obj["dataset"] = "VQA-RAD"
    elif reason == huatuo.EMPTY_QUESTION:
        obj["question"] = " "
    elif reason == huatuo.OPEN_QUESTION:  # options absent, or null
        if nth % 2:
            obj["options"] = None
        else:
            del obj["options"]
    elif reason == huatuo.EMPTY_OPTIONS:
        obj["options"] = []
    elif reason == huatuo.BAD_OPTIONS:  # 7 options, or a non-string option
        obj["options"] = [*obj["options"], "a", "b", "c", "d", "e", "f"][:7] if nth % 2 == 0 else [obj["answer"], 3]
    elif reason == huatuo.UNKNOWN_ANSWER:  # "?", or a text among no options
        obj["answer"] = "?" if nth % 2 == 0 else _NO_GOLD_ANSWER
    elif reason == huatuo.EMPTY_IMAGE:
        images.pop(obj["image"][0])
        obj["image"] = []
    elif reason == huatuo.MISSING_IMAGE:
        images.pop(obj["image"][0])
    else:
        raise ValueError(f"unknown drop reason {reason!r}")
    return obj


def _write_zip(path: Path, folder: str, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) into the zip archive ``path`` under ``folder/``, sorted by name."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in [f"{folder}/", *(f"{folder}/{n}" for n in sorted(files))]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)  # a fixed time, so that the bytes depend on seed only
            info.external_attr = (0o40755 << 16 | 0x10) if name.endswith("/") else 0o644 << 16
            zf.writestr(info, b"" if name.endswith("/") else files[name[len(folder) + 1 :]])


def _jpeg(png: bytes) -> bytes:
    """Re-encode PNG bytes as a JPEG file (as PMC-VQA's figures are)."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _slug(modality: str) -> str:
    return modality.lower().replace("-", "")
