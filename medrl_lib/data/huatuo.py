r"""The HuatuoGPT-Vision medical evaluation data in the common schema (:mod:`medrl_lib.data.schema`).

The data as published on the Hugging Face hub (``FreedomIntelligence/Medical_Multimodal_Evaluation_Data``,
split ``test``): the JSON file ``medical_multimodel_evaluation_data.json``, a list of objects with the fields
``question``, ``options`` (the option texts, without letters), ``answer`` (the gold option's text), ``image``
(a list of image paths), ``dataset`` (the source benchmark, e.g. ``"OmniMedVQA"``) and ``subset`` (the
modality), and the images in ``images.zip``. Further fields are ignored. How :func:`load_huatuo_eval` maps an
object to a row of the common schema:

- ``id``: ``f"huatuo-{row index:06d}"``, the 0-based index of the object in the JSON list, so ids are stable
  whatever rows are dropped or selected later;
- ``question``: ``question``, stripped; ``options``: ``options``, each normalised (2 to 6 of them);
- ``answer``: the letter of the first option equal to ``answer``, both normalised;
- ``modality``: ``subset`` mapped by :data:`SUBSET_MODALITIES`; objects of any other subset (fundus
  photography, ultrasound, microscopy, ...) are dropped and counted;
- ``image``: the bytes of the first path of ``image`` (see :class:`~medrl_lib.data.records.ImageStore` for
  how paths are matched to archive members or files);
- ``image_path``: that first path of ``image``, stripped, as published (``"images/brain002206.png"``): MedVLM-R1's
  published test items are matched by it and the question (:func:`medrl_lib.data.splits.medvlm_r1_published_split`);
- ``source``: ``"huatuo/"`` and ``dataset`` lower-cased, e.g. ``"huatuo/omnimedvqa"``; ``facts``: ``"{}"``.

Options and answers are normalised with :func:`~medrl_lib.data.records.clean_text` (runs of unicode
whitespace such as ``\u00a0`` become one space, zero-width characters go, the ends are stripped).

Objects are dropped, not fatal: each with the first of these reasons (:data:`DROP_REASONS`, checked in this
order), counted:

- ``not_an_object``: the list entry is not a JSON object;
- ``missing_subset``: ``subset`` is absent or not a string (the objects of the other benchmarks in the file,
  VQA-RAD, SLAKE, PathVQA, ..., have none);
- ``other_subset``: ``subset`` is not one of :data:`SUBSET_MODALITIES`;
- ``missing_dataset``: ``dataset`` is absent or not a string;
- ``dataset_filter``: ``dataset`` is not one of ``datasets_filter`` (of :func:`load_huatuo_eval`);
- ``empty_question``: ``question`` is absent, not a string, or empty;
- ``open_question``: ``options`` is absent or ``null`` (an open-ended question);
- ``empty_options``: ``options`` is an empty list;
- ``bad_options``: ``options`` is not a list, holds a non-string or an empty string, or has fewer than 2 or
  more than 6 entries;
- ``unknown_answer``: ``answer`` is absent, not a string, ``"?"``, or not among the options;
- ``empty_image``: ``image`` is not a list whose first entry is a non-empty string;
- ``missing_image``: the image file is not in the archive or folder (or is empty); found when the images are
  read, by :func:`~medrl_lib.data.records.records_to_dataset`.

The summary of a load is stored as JSON in ``info.description`` of the dataset (read it with
:func:`~medrl_lib.data.schema.load_summary`): ``file``, ``rows_read``, ``rows_kept``, ``dropped`` (every
reason and its count, 0 included), ``dropped_rows`` (the first
:data:`~medrl_lib.data.schema.MAX_DROPPED_ROWS` drops in row order, each ``{"row", "id", "reason",
"detail"}``), ``dropped_rows_truncated`` and ``datasets_filter`` (the setting). A load that drops objects
warns once (:class:`UserWarning`) with the counts by reason, naming the file; as most of the published file
is other benchmarks and subsets, the default load always warns.

Errors are whole-file errors: :class:`~medrl_lib.data.schema.DataError` naming the file for invalid JSON, a
top level that is not a list, and a file of which no object is kept (the message gives the drop counts);
:class:`FileNotFoundError` for a missing file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import snapshot_download

from medrl_lib.data.records import ImageStore, Record, clean_text, looks_like_hub_id, records_to_dataset
from medrl_lib.data.schema import (
    EMPTY_IMAGE,
    EMPTY_QUESTION,
    LETTERS,
    MIN_OPTIONS,
    MISSING_IMAGE,
    OTHER_MODALITY,
    DataError,
    DropLog,
    letter_of,
)

__all__ = ["DROP_REASONS", "SUBSET_MODALITIES", "load_huatuo_eval", "load_huatuo_panel"]

HUB_ID = "FreedomIntelligence/Medical_Multimodal_Evaluation_Data"
"""The hub dataset that holds the HuatuoGPT-Vision evaluation data."""

JSON_FILE = "medical_multimodel_evaluation_data.json"
"""The published JSON file (the name's spelling is the publisher's)."""

IMAGE_ARCHIVE = "images.zip"
"""The published image archive."""

SUBSET_MODALITIES: dict[str, str] = {
    "MR (Mag-netic Resonance Imaging)": "MRI",
    "CT(Computed Tomography)": "CT",
    "X-Ray": "X-ray",
}
"""The ``subset`` strings kept, exactly as published, and their modality; every other subset is dropped."""

NOT_AN_OBJECT = "not_an_object"
MISSING_SUBSET = "missing_subset"
OTHER_SUBSET = "other_subset"
MISSING_DATASET = "missing_dataset"
DATASET_FILTER = "dataset_filter"
OPEN_QUESTION = "open_question"
EMPTY_OPTIONS = "empty_options"
BAD_OPTIONS = "bad_options"
UNKNOWN_ANSWER = "unknown_answer"

DROP_REASONS: tuple[str, ...] = (
    NOT_AN_OBJECT,
    MISSING_SUBSET,
    OTHER_SUBSET,
    MISSING_DATASET,
    DATASET_FILTER,
    EMPTY_QUESTION,
    OPEN_QUESTION,
    EMPTY_OPTIONS,
    BAD_OPTIONS,
    UNKNOWN_ANSWER,
    EMPTY_IMAGE,
    MISSING_IMAGE,
)
"""The reasons an object is dropped for, in the order they are checked (see the module docstring)."""


def load_huatuo_eval(
    source: str = HUB_ID,
    *,
    json_file: str = JSON_FILE,
    images: str | None = None,
    datasets_filter: Sequence[str] | None = ("OmniMedVQA",),
    all_subsets: bool = False,
) -> datasets.Dataset:
    """Load the HuatuoGPT-Vision evaluation data as a dataset with :data:`~medrl_lib.data.schema.FEATURES`.

    ``source`` is one of:

    - a local path to the JSON file itself (``json_file`` is then ignored);
    - a local folder holding ``json_file`` and the images: ``images.zip``, or else a folder ``images/``, or
      else the folder itself;
    - a hub dataset id (the default): ``json_file`` and ``images.zip`` are downloaded with
      :func:`huggingface_hub.snapshot_download` (into the hub cache; offline, from the cache).

    A local path wins over a hub id of the same spelling. ``images`` (a zip archive or a folder) replaces the
    images found from ``source``. ``datasets_filter`` keeps only the objects whose ``dataset`` field is one of
    its names (exactly; the default keeps OmniMedVQA, where MedVLM-R1's test items come from); ``None`` keeps
    every benchmark. Objects of a subset outside :data:`SUBSET_MODALITIES` and objects outside
    ``datasets_filter`` are dropped before their other fields are checked; every drop is counted by reason
    (:data:`DROP_REASONS`) in the JSON summary in ``info.description`` of the result (see the module
    docstring, and :func:`~medrl_lib.data.schema.load_summary`).

    ``all_subsets`` keeps the objects of every subset, and those with none (VQA-RAD, SLAKE, PathVQA, MMMU, ...):
    their ``modality`` is :data:`~medrl_lib.data.schema.OTHER_MODALITY` where the subset is not one of
    :data:`SUBSET_MODALITIES` (``missing_subset`` and ``other_subset`` then drop nothing).
    """
    if isinstance(datasets_filter, str):
        datasets_filter = (datasets_filter,)
    json_path, image_location = _resolve(source, json_file, images)
    name = json_path.name
    try:
        items = json.loads(json_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{name}: not valid JSON ({e})") from e
    if not isinstance(items, list):
        raise DataError(f"{name}: expected a JSON list of objects, got {type(items).__name__}")
    drops = DropLog(name, DROP_REASONS)
    records: list[Record] = []
    for index, item in enumerate(items):
        row_id = f"huatuo-{index:06d}"
        parsed = _record(item, index, row_id, datasets_filter, all_subsets)
        if isinstance(parsed, Record):
            records.append(parsed)
        else:
            drops.drop(index, row_id, *parsed)
    summary = {
        "file": name,
        "rows_read": len(items),
        "datasets_filter": list(datasets_filter) if datasets_filter is not None else None,
        **({"all_subsets": True} if all_subsets else {}),
    }
    with ImageStore(image_location) as store:
        return records_to_dataset(records, store, drops, summary)


def load_huatuo_panel(
    source: str = HUB_ID,
    *,
    benchmarks: Sequence[str] | None = None,
    json_file: str = JSON_FILE,
    images: str | None = None,
) -> datasets.Dataset:
    """Every benchmark of the HuatuoGPT-Vision evaluation data (or those named in ``benchmarks``), closed-form items
    only, with :data:`~medrl_lib.data.schema.FEATURES` and a ``benchmark`` column (the ``dataset`` field as
    published, e.g. ``"VQA-RAD"``): :func:`load_huatuo_eval` with ``all_subsets``, so that open questions and
    malformed objects are dropped and counted as there (the summary in ``info.description``)."""
    ds = load_huatuo_eval(source, json_file=json_file, images=images, datasets_filter=benchmarks, all_subsets=True)
    json_path, _ = _resolve(source, json_file, images)
    items = json.loads(json_path.read_text(encoding="utf-8"))
    names = [items[int(row_id.removeprefix("huatuo-"))]["dataset"] for row_id in ds["id"]]
    return ds.add_column("benchmark", names, new_fingerprint=f"{ds._fingerprint}-benchmark")


def _record(
    item: Any, index: int, row_id: str, datasets_filter: Sequence[str] | None, all_subsets: bool = False
) -> Record | tuple[str, str]:
    """Check one entry of the JSON list and turn it into a :class:`Record`, or say why it is dropped:
    ``(reason, detail)``. ``all_subsets``: keep every subset (:func:`load_huatuo_eval`)."""
    if not isinstance(item, dict):
        return NOT_AN_OBJECT, f"a JSON {_kind(item)}, not an object"
    subset = item.get("subset")
    if not isinstance(subset, str) and not all_subsets:
        return MISSING_SUBSET, f"field 'subset' is {'absent' if 'subset' not in item else _kind(subset)}"
    modality = SUBSET_MODALITIES.get(subset) if isinstance(subset, str) else None
    if modality is None and all_subsets:
        modality = OTHER_MODALITY
    if modality is None:
        return OTHER_SUBSET, f"subset {subset!r}"
    benchmark = item.get("dataset")
    if not isinstance(benchmark, str):
        return MISSING_DATASET, f"field 'dataset' is {'absent' if 'dataset' not in item else _kind(benchmark)}"
    if datasets_filter is not None and benchmark not in datasets_filter:
        return DATASET_FILTER, f"dataset {benchmark!r}"
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        return EMPTY_QUESTION, f"field 'question' is {question!r}"
    raw_options = item.get("options")
    if raw_options is None:
        return OPEN_QUESTION, f"field 'options' is {'absent' if 'options' not in item else 'null'}"
    if raw_options == []:
        return EMPTY_OPTIONS, "field 'options' is []"
    if not isinstance(raw_options, list) or not all(isinstance(o, str) and clean_text(o) for o in raw_options):
        return BAD_OPTIONS, f"field 'options' must be a list of non-empty strings, got {raw_options!r}"
    if not MIN_OPTIONS <= len(raw_options) <= len(LETTERS):
        return BAD_OPTIONS, f"field 'options' has {len(raw_options)} entries, expected {MIN_OPTIONS}..{len(LETTERS)}"
    options = [clean_text(o) for o in raw_options]
    answer = clean_text(item["answer"]) if isinstance(item.get("answer"), str) else None
    if answer is None or answer == "?" or answer not in options:
        return UNKNOWN_ANSWER, f"field 'answer' {item.get('answer')!r} is not among the options {options!r}"
    gold = options.index(answer)
    paths = item.get("image")
    if not isinstance(paths, list) or not paths or not isinstance(paths[0], str) or not paths[0].strip():
        return EMPTY_IMAGE, f"field 'image' must be a non-empty list of paths, got {paths!r}"
    return Record(
        id=row_id,
        row=index,
        question=question.strip(),
        options=options,
        answer=letter_of(gold),
        modality=modality,
        source=f"huatuo/{benchmark.lower()}",
        image=paths[0].strip(),
    )


def _kind(value: Any) -> str:
    """The JSON name of the type of ``value``."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _resolve(source: str, json_file: str, images: str | None) -> tuple[Path, Path]:
    """Return the JSON file and the image archive or folder named by ``source``, ``json_file`` and ``images``."""
    path = Path(source)
    if path.is_file():
        folder, json_path = path.parent, path
    elif path.is_dir():
        folder, json_path = path, path / json_file
    elif looks_like_hub_id(source):
        patterns = [json_file] if images is not None else [json_file, IMAGE_ARCHIVE]
        folder = Path(snapshot_download(repo_id=source, repo_type="dataset", allow_patterns=patterns))
        json_path = folder / json_file
    else:
        raise FileNotFoundError(f"{source!r} is neither a local JSON file or folder nor a hub id 'owner/name'")
    if not json_path.is_file():
        raise FileNotFoundError(f"{str(json_path)!r}: no JSON file {json_file!r} in {str(folder)!r}")
    if images is not None:
        return json_path, Path(images)
    for candidate in (folder / IMAGE_ARCHIVE, folder / Path(IMAGE_ARCHIVE).stem):
        if candidate.exists():
            return json_path, candidate
    return json_path, folder
