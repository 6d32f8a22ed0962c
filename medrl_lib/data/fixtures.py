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

Each CSV file has ``n_per_modality`` good rows of each of MRI, CT and X-ray images. The loader infers a row's
modality from its question alone (:func:`~medrl_lib.data.pmc_vqa.infer_modality`), so most questions are made
to name it ("In this MRI, ...", "On this CT scan, ...", "On the chest X-ray, ..." where the synthetic question
does not already say "in this CT image"); the questions asking which modality was used are left as they are:
only their gold option names the modality, and the loader keeps them with the modality ``"other"``. About one
good row in three is a second question on a figure that another row already asks about (PMC-VQA has about 1.5
questions per figure), "With which imaging technique was this figure acquired?", whose modality is ``"other"``
too: ``n_per_modality - n_per_modality // 3`` figures per modality carry the ``n_per_modality`` good rows. To
these come, per file, one row of each kept quirk of :data:`PMC_KEPT_QUIRKS` (kept by the loader: stray
``\u00a0`` in choices, answer text and label; no ``Answer_label``, the answer text names the gold choice; an
answer text that is no choice's text, the label decides), a histology question that names no modality (kept as
``"other"``; dropped with ``unknown_modality="drop"``) and one malformed row of each other reason of
:data:`medrl_lib.data.pmc_vqa.DROP_REASONS`, all shuffled into a deterministic order. ``test_2.csv`` also asks
the second question on :data:`PMC_SHARED_FIGURES` figures per modality of ``train_2.csv`` (as PMC-VQA's files
share figures), so that a split by row would put one figure in train and test.

:func:`write_huatuo_eval` writes ``medical_multimodel_evaluation_data.json`` (a list of objects with
``question``, ``options`` (texts without letters), ``answer`` (the gold option's text), ``image`` (a list of
one path ``images/<name>.png``), ``dataset`` and ``subset``, as published) and ``images.zip`` (members
``images/<name>.png``): enough OmniMedVQA rows for MedVLM-R1's split (``n_train_mri + n_test_per_modality +
spare`` MRI rows, ``n_test_per_modality + spare`` CT and X-ray rows) and the objects of
:data:`HUATUO_PLANTED` that the loader drops: other benchmarks' objects without ``subset``, other subsets,
``answer: "?"``, empty options, open questions, a missing image, a non-object entry, ... Given ``published``
(identifiers like those of :func:`medrl_lib.data.medvlm_r1_test_items`), it also writes one object per item with
its image path and question (asking, in the options, for the modality, so that the answer is right for the
image), and for each MRI item a second object on the same image with another question (a row that MedVLM-R1's
training draw must skip).

Both return what they planted, so that a test can check a loader's counts against it::

    {"files": [paths written],
     "good_rows": {...},        # rows the loader keeps, per modality ("other" included)
                                # (PMC-VQA: per CSV file name; Huatuo: {"MRI": n, "CT": n, "X-ray": n})
     "malformed": {reason: count},  # every drop reason of the loader, 0 included (PMC-VQA: the same per CSV file)
     "planted_rows": {...},     # row index -> drop reason (PMC-VQA: per CSV file name)
     ...}

For PMC-VQA ``kept_quirks`` (row index -> quirk), ``other_rows`` (the row indices kept as ``"other"``, which
``unknown_modality="drop"`` drops) and ``modalities`` (row index -> modality of every kept row) are keyed by file
name too, and ``shared_figures`` lists the ``Figure_path`` values found in both files. The counts are those of a
load with the loaders' defaults (``unknown_modality="other"``, ``datasets_filter=("OmniMedVQA",)``).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
from PIL import Image

from medrl_lib.data import huatuo, pmc_vqa
from medrl_lib.data.pmc_vqa import infer_modality
from medrl_lib.data.schema import MODALITIES, OTHER_MODALITY, image_key
from medrl_lib.data.synthetic import OPTION_POOLS, SyntheticConfig, generate

PMC_HEADER: tuple[str, ...] = (
    "Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label",
)
"""The columns of the published PMC-VQA v2 CSV files, in their order."""

PMC_CSV_FILES: tuple[str, ...] = ("train_2.csv", "test_2.csv")
"""The CSV files :func:`write_pmc_vqa` writes."""

PMC_ARCHIVE = "images_2.zip"
"""The image archive of both PMC-VQA v2 CSV files; its members are ``images_2/<Figure_path>``."""

PMC_SHARED_FIGURES = 2
"""Figures per modality of ``train_2.csv`` that ``test_2.csv`` asks about too (fewer where ``train_2.csv`` has
fewer figures)."""

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


def write_pmc_vqa(folder: str | Path, *, n_per_modality: int = 12, seed: int = 0,
                  figure_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write ``train_2.csv``, ``test_2.csv`` and ``images_2.zip`` into ``folder`` (created if needed); return
    what was planted (see the module docstring). ``figure_size``: (width, height) of every figure, e.g. above the
    paper's pixel cap for the GPU benchmarks (default: the synthetic items' own size).

    >>> import tempfile
    >>> planted = write_pmc_vqa(tempfile.mkdtemp(), n_per_modality=3)
    >>> planted["good_rows"]["train_2.csv"], planted["malformed"]["label_contradicts_answer"]
    ({'MRI': 3, 'CT': 2, 'X-ray': 2, 'other': 6}, 1)
    >>> len(planted["shared_figures"])  # 2 figures per modality of train_2.csv asked about in test_2.csv too
    6
    """
    if n_per_modality < 0:
        raise ValueError(f"n_per_modality must be non-negative, got {n_per_modality}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images: dict[str, bytes] = {}
    planted_rows: dict[str, dict[int, str]] = {}
    kept_quirks: dict[str, dict[int, str]] = {}
    modalities: dict[str, dict[int, str]] = {}
    good: dict[str, dict[str, int]] = {}
    files = []
    train_figures: dict[str, list[str]] = {}
    for k, csv_name in enumerate(PMC_CSV_FILES):
        shared = {m: names[-PMC_SHARED_FIGURES:] for m, names in train_figures.items()} if k else {}
        rows, kinds, mods, figures = _pmc_rows(csv_name, k, n_per_modality, seed, images, shared, figure_size)
        if k == 0:
            train_figures = figures
        order = np.random.default_rng([seed, zlib.crc32(csv_name.encode())]).permutation(len(rows))
        rows = [rows[i] for i in order]
        kinds = [kinds[i] for i in order]
        mods = [mods[i] for i in order]
        planted_rows[csv_name] = {i: kind for i, kind in enumerate(kinds) if mods[i] is None}
        kept_quirks[csv_name] = {i: kind for i, kind in enumerate(kinds) if kind in PMC_KEPT_QUIRKS}
        modalities[csv_name] = {i: m for i, m in enumerate(mods) if m is not None}
        good[csv_name] = {m: sum(1 for v in mods if v == m) for m in (*MODALITIES, OTHER_MODALITY)}
        path = folder / csv_name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(PMC_HEADER)
            writer.writerows(rows)
        files.append(str(path))
    archive = folder / PMC_ARCHIVE
    _write_zip(archive, Path(PMC_ARCHIVE).stem, images)
    files.append(str(archive))
    in_file = {name: {r[0] for r in _read_rows(folder / name) if r[0]} for name in PMC_CSV_FILES}
    return {
        "files": files,
        "good_rows": good,
        "malformed": {r: 0 if r == pmc_vqa.UNKNOWN_MODALITY_REASON else 1 for r in pmc_vqa.DROP_REASONS},
        "planted_rows": planted_rows,
        "kept_quirks": kept_quirks,
        "other_rows": {name: sorted(i for i, m in ms.items() if m == OTHER_MODALITY)
                       for name, ms in modalities.items()},
        "modalities": modalities,
        "shared_figures": sorted(in_file[PMC_CSV_FILES[0]] & in_file[PMC_CSV_FILES[1]]),
        "rows": {name: len(modalities[name]) + len(planted_rows[name]) for name in PMC_CSV_FILES},
        "figures": len(images),
    }


def _read_rows(path: Path) -> list[list[str]]:
    """The rows of a CSV file written here, without the header."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


def write_huatuo_eval(
    folder: str | Path,
    *,
    n_train_mri: int = 8,
    n_test_per_modality: int = 4,
    seed: int = 0,
    spare: int = 2,
    published: Sequence[Mapping[str, Any]] | None = None,
    panel_items: int = 0,
) -> dict[str, Any]:
    """Write ``medical_multimodel_evaluation_data.json`` and ``images.zip`` into ``folder`` (created if needed);
    return what was planted (see the module docstring).

    ``panel_items`` appends, after every other object, that many closed-form objects of each benchmark of
    :data:`PANEL_QUIRKS` with the published file's quirks, one open MMMU question (``options`` null) and, as for every
    benchmark, nothing else; the result then has ``panel_rows`` (the closed-form objects per benchmark, which
    :func:`medrl_lib.data.huatuo.load_huatuo_panel` keeps) and ``malformed`` counts them where the default load
    (OmniMedVQA's three subsets) drops them.

    ``published`` (dicts with ``image``, ``question`` and ``modality``, like
    :func:`medrl_lib.data.medvlm_r1_test_items`) adds one object per item with that image path (as given; the
    archive member is ``images/<base name>``) and question, its options the modality names (the gold one the
    item's modality), and for each MRI item a second object on the same image asking another question. The
    result then also has ``published_rows`` (the index in the JSON list of each item's object, in the order of
    ``published``) and ``published_image_twins`` (the indices of the second objects); ``good_rows`` counts them.

    >>> import tempfile
    >>> planted = write_huatuo_eval(tempfile.mkdtemp(), n_train_mri=2, n_test_per_modality=1, spare=0)
    >>> planted["good_rows"], planted["malformed"]["missing_subset"]
    ({'MRI': 3, 'CT': 1, 'X-ray': 1}, 3)
    >>> item = {"image": "images/pub_0.png", "question": "What is shown?", "modality": "CT"}
    >>> planted = write_huatuo_eval(tempfile.mkdtemp(), n_train_mri=2, n_test_per_modality=1, spare=0,
    ...                             published=[item])
    >>> planted["good_rows"], len(planted["published_rows"]), planted["published_image_twins"]
    ({'MRI': 3, 'CT': 2, 'X-ray': 1}, 1, [])
    """
    for name, value in (("n_train_mri", n_train_mri), ("n_test_per_modality", n_test_per_modality), ("spare", spare)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
    published = list(published or [])
    bases = [image_key(item.get("image")) for item in published]
    for k, (item, base) in enumerate(zip(published, bases)):
        if item.get("modality") not in MODALITIES or base is None or not item.get("question"):
            raise ValueError(f"published item {k} needs an image, a question and a modality of {MODALITIES}: {item!r}")
    clash = sorted({b for b in bases if bases.count(b) > 1 or b.startswith(("omnimedvqa_", "planted_"))})
    if clash:
        raise ValueError(f"published image names repeat or clash with the fixture's own: {clash}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = {m: n_test_per_modality + spare + (n_train_mri if m == "MRI" else 0) for m in MODALITIES}
    n_published = {m: sum(1 for item in published if item["modality"] == m) for m in MODALITIES}
    bad_kinds = [reason for reason, n in HUATUO_PLANTED.items() for _ in range(n)]
    # the malformed objects that need an otherwise valid item, spread over the modalities in turn
    needs_item = [r for r in bad_kinds if r != huatuo.NOT_AN_OBJECT]
    extra = {m: sum(1 for i in range(len(needs_item)) if MODALITIES[i % len(MODALITIES)] == m) for m in MODALITIES}
    items: dict[str, list[dict[str, Any]]] = {}
    images: dict[str, bytes] = {}
    for m in MODALITIES:
        ds = generate(SyntheticConfig(n_items=good[m] + extra[m] + n_published[m], modalities=(m,), min_options=2,
                                      max_options=6, seed=seed, id_prefix=f"huatuo-{m}"))
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
    rng = np.random.default_rng([seed, zlib.crc32(b"published")])
    used = {m: good[m] + extra[m] for m in MODALITIES}
    for k, (item, base) in enumerate(zip(published, bases)):
        m = item["modality"]
        synthetic = items[m][used[m]]
        used[m] += 1
        images[f"images/{base}"] = synthetic["png"]
        options = [m, *(o for o in OPTION_POOLS["modality"] if o != m)][:4]
        options = [options[i] for i in rng.permutation(4)]
        objs.append({"question": item["question"], "options": options, "answer": m, "image": [item["image"]],
                     "dataset": "OmniMedVQA", "subset": HUATUO_SUBSETS[m]})
        kinds.append(f"published:{k}")
        if m == "MRI":  # another question on the same image: never a training row
            twin = _huatuo_obj(synthetic, base, m, {})
            twin["image"] = [item["image"]]
            objs.append(twin)
            kinds.append(f"twin:{k}")
    order = np.random.default_rng([seed, zlib.crc32(b"huatuo")]).permutation(len(objs))
    objs = [objs[i] for i in order]
    kinds = [kinds[i] for i in order]
    panel_rows, panel_drops = _panel_objects(objs, kinds, images, panel_items, seed)
    json_path = folder / huatuo.JSON_FILE
    json_path.write_text(json.dumps(objs, ensure_ascii=False, indent=1), encoding="utf-8")
    archive = folder / huatuo.IMAGE_ARCHIVE
    _write_zip(archive, "images", {name.removeprefix("images/"): data for name, data in images.items()})
    where = {kind: i for i, kind in enumerate(kinds)}
    return {
        "files": [str(json_path), str(archive)],
        "good_rows": {m: good[m] + n_published[m] * (2 if m == "MRI" else 1) for m in MODALITIES},
        "malformed": {reason: HUATUO_PLANTED.get(reason, 0) + panel_drops.get(reason, 0) for reason in huatuo.DROP_REASONS},
        "panel_rows": panel_rows,
        "planted_rows": {i: kind for i, kind in enumerate(kinds) if kind in huatuo.DROP_REASONS},
        "rows": len(objs),
        "published_rows": [where[f"published:{k}"] for k in range(len(published))],
        "published_image_twins": sorted(where[f"twin:{k}"] for k in range(len(published)) if f"twin:{k}" in where),
    }


PANEL_QUIRKS: dict[str, dict[str, Any]] = {
    "VQA-RAD_test": {"subset": None, "yes_no": ("yes", "no")},        # no subset field; closed yes/no questions
    "SLAKE_test": {"subset": "", "yes_no": ("Yes", "No")},            # an empty subset; capitalised answers
    "PathVQA_test": {"subset": None, "yes_no": ("yes", "no"), "suffix": ".jpg"},
    "PMC-VQA_test": {"subset": "", "period": True},                    # option texts with a trailing period
    "MMMU_Medical_Validation": {"subset": "validation_Clinical_Medicine", "images": 2},  # two images listed
    "OmniMedVQA": {"subset": "ultrasound"},                            # a subset outside MRI, CT and X-ray
}
"""The panel benchmarks :func:`write_huatuo_eval` plants with ``panel_items``, named as the published file's
``dataset`` field spells them, and the quirk each carries there."""


def _panel_objects(objs: list[Any], kinds: list[str], images: dict[str, bytes], n: int,
                   seed: int) -> tuple[dict[str, int], dict[str, int]]:
    """Append ``n`` objects of each :data:`PANEL_QUIRKS` benchmark (and one open MMMU question) to ``objs``; return
    the closed-form objects per benchmark and what the default load drops of them, by reason."""
    if n <= 0:
        return {}, {}
    rng = np.random.default_rng([seed, zlib.crc32(b"panel")])
    drops: dict[str, int] = {}
    rows: dict[str, int] = {}
    for b, (name, quirk) in enumerate(PANEL_QUIRKS.items()):
        items = _items(generate(SyntheticConfig(n_items=n + 1, modalities=(MODALITIES[b % 3],), seed=seed,
                                                id_prefix=f"panel-{name}")))
        for i, item in enumerate(items[:n] + ([items[n]] if name == "MMMU_Medical_Validation" else [])):
            obj = _huatuo_obj(item, f"{_slug(name)}_{i:03d}{quirk.get('suffix', '.png')}", MODALITIES[b % 3], images)
            obj["dataset"] = name
            if quirk["subset"] is None:
                del obj["subset"]
            else:
                obj["subset"] = quirk["subset"]
            if "yes_no" in quirk:  # a closed question on the lesion's side, answered yes or no
                side = json.loads(item["facts"])["lesions"][0]["side"]
                asked = ("left", "right")[int(rng.integers(2))]
                obj.update(question=f"Is the abnormality on the {asked} side?", options=list(quirk["yes_no"]),
                           answer=quirk["yes_no"][0 if asked == side else 1])
            if quirk.get("period"):
                obj["options"] = [f"{o}." for o in obj["options"]]
                obj["answer"] += "."
            if quirk.get("images"):
                obj["image"] = obj["image"] * quirk["images"]
            open_question = i == n
            if open_question:
                obj["options"] = None
            objs.append(obj)
            kinds.append("panel-open" if open_question else f"panel:{name}")
            reason = (huatuo.MISSING_SUBSET if quirk["subset"] is None else huatuo.OTHER_SUBSET)
            drops[reason] = drops.get(reason, 0) + 1
        rows[name] = n
    return rows, drops


def _items(ds: datasets.Dataset) -> list[dict[str, Any]]:
    """The rows of a synthetic dataset as dicts, the image as PNG bytes (not decoded)."""
    rows = ds.cast_column("image", datasets.Image(decode=False)).to_list()
    for row in rows:
        row["png"] = row.pop("image")["bytes"]
        row["gold"] = "ABCDEF".index(row["answer"])
    return rows


def _pmc_rows(
    csv_name: str, k: int, n_per_modality: int, seed: int, images: dict[str, bytes], shared: dict[str, list[str]],
    figure_size: tuple[int, int] | None = None,
) -> tuple[list[list[str]], list[str], list[str | None], dict[str, list[str]]]:
    """The rows of one PMC-VQA CSV file, in plan order: the rows, the kind of each ("good", "shared", a quirk, a
    reason), the modality the loader gives each kept row (``None`` for a dropped one) and the figures of each
    modality's good rows. The images of its figures are added to ``images``; ``shared`` names, per modality,
    figures of another file to ask the second question about."""
    n_figures = n_per_modality - n_per_modality // 3
    kinds_extra = [*PMC_KEPT_QUIRKS, *pmc_vqa.DROP_REASONS]
    per_modality = -(-len(kinds_extra) // len(MODALITIES))
    rng = np.random.default_rng([seed, k])
    ds = generate(SyntheticConfig(n_items=len(MODALITIES) * (n_figures + per_modality), modalities=MODALITIES,
                                  min_options=3, max_options=4, seed=seed, id_prefix=Path(csv_name).stem))
    items = _items(ds)
    block = n_figures + per_modality
    counter = iter(range(10**6))
    rows: list[list[str]] = []
    kinds: list[str] = []
    mods: list[str | None] = []
    figures: dict[str, list[str]] = {}

    def figure(item: dict[str, Any], store: bool = True) -> str:
        j = next(counter)
        name = f"PMC{7_000_000 + 100_000 * k + j:07d}_Fig{j % 7 + 1}_{j}.jpg"
        if store:
            images[name] = _jpeg(item["png"], figure_size)
        return name

    def second_question(name: str, m: str, kind: str) -> None:
        options = [m, *(o for o in OPTION_POOLS["modality"] if o != m)][:4]
        options = [options[i] for i in rng.permutation(4)]
        rows.append(_pmc_row(name, _SECOND_QUESTION, options, options.index(m)))
        kinds.append(kind)
        mods.append(OTHER_MODALITY)  # only the gold option names the modality: the question names none

    for mi, m in enumerate(MODALITIES):
        figures[m] = []
        for item in items[mi * block : mi * block + n_figures]:
            name = figure(item)
            figures[m].append(name)
            question = _pmc_question(item["question"], item["options"][item["gold"]], m)
            rows.append(_pmc_row(name, question, item["options"], item["gold"]))
            kinds.append("good")
            mods.append(infer_modality(question) or OTHER_MODALITY)
        for name in figures[m][: n_per_modality - n_figures]:  # a second question on the same figure
            second_question(name, m, "good")
    for m in MODALITIES:  # the second question on figures of the other file (their images are stored already)
        for name in shared.get(m, []):
            second_question(name, m, "shared")
    for i, kind in enumerate(kinds_extra):
        m = MODALITIES[i % len(MODALITIES)]
        item = items[MODALITIES.index(m) * block + n_figures + i // len(MODALITIES)]
        name = figure(item, store=kind not in (pmc_vqa.MISSING_IMAGE, pmc_vqa.EMPTY_IMAGE))
        row = _pmc_special(kind, name, item, m, rng)
        rows.append(row)
        kinds.append(kind)
        dropped = kind in pmc_vqa.DROP_REASONS and kind != pmc_vqa.UNKNOWN_MODALITY_REASON
        mods.append(None if dropped else infer_modality(row[1]) or OTHER_MODALITY)
    return rows, kinds, mods, figures


def _pmc_question(question: str, gold_text: str, modality: str) -> str:
    """``question``, prefixed so that it names ``modality``, unless it already does or it asks for the modality
    (its gold option is ``modality``): that question is left naming none, as such questions do."""
    if infer_modality(question) != modality and gold_text != modality:
        question = MODALITY_PREFIX[modality] + question[0].lower() + question[1:]
        assert infer_modality(question) == modality, question
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


def _jpeg(png: bytes, size: tuple[int, int] | None = None) -> bytes:
    """Re-encode PNG bytes as a JPEG file (as PMC-VQA's figures are), resized to ``size`` (width, height) if given."""
    buffer = io.BytesIO()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    (image.resize(size, Image.BICUBIC) if size else image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _slug(modality: str) -> str:
    return modality.lower().replace("-", "")
