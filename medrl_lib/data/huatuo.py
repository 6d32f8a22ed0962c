"""The HuatuoGPT-Vision medical evaluation data in the common schema (:mod:`medrl_lib.data.schema`).

The data as published on the Hugging Face hub (``FreedomIntelligence/Medical_Multimodal_Evaluation_Data``,
split ``test``): the JSON file ``medical_multimodel_evaluation_data.json``, a list of objects with the fields
``question``, ``options`` (the option texts, without letters), ``answer`` (the gold option's text), ``image``
(a list of image paths), ``dataset`` (the source benchmark, e.g. ``"OmniMedVQA"``) and ``subset`` (the
modality), and the images in ``images.zip``. Further fields are ignored. How :func:`load_huatuo_eval` maps an
object to a row of the common schema:

- ``id``: ``f"huatuo-{row index:06d}"``, the 0-based index of the object in the JSON list, so ids are stable
  whatever rows are dropped or selected later;
- ``question``: ``question``, stripped; ``options``: ``options``, each stripped (2 to 6 of them);
- ``answer``: the letter of ``answer`` among ``options``: the first option equal to it, or else the first
  equal to it once both are stripped of surrounding whitespace;
- ``modality``: ``subset`` mapped by :data:`SUBSET_MODALITIES`; objects of any other subset (fundus
  photography, ultrasound, microscopy, ...) are dropped and counted;
- ``image``: the bytes of the first path of ``image`` (see :class:`~medrl_lib.data.pmc_vqa.ImageStore` for
  how paths are matched to archive members or files);
- ``source``: ``"huatuo/"`` and ``dataset`` lower-cased, e.g. ``"huatuo/omnimedvqa"``; ``facts``: ``"{}"``.

Errors are :class:`~medrl_lib.data.schema.DataError` naming the file, the row id and the field: a missing
field or one of the wrong type, an empty ``question``, fewer than 2 or more than 6 ``options``, an ``answer``
not among the options, an empty ``image`` list, an image not found.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import snapshot_download

from medrl_lib.data.pmc_vqa import ImageStore, Record, looks_like_hub_id, records_to_dataset
from medrl_lib.data.schema import LETTERS, MIN_OPTIONS, DataError, letter_of

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

FIELDS: tuple[str, ...] = ("question", "options", "answer", "image", "dataset", "subset")
"""The fields every object must have."""


def load_huatuo_eval(
    source: str = HUB_ID,
    *,
    json_file: str = JSON_FILE,
    images: str | None = None,
    datasets_filter: Sequence[str] | None = ("OmniMedVQA",),
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
    ``datasets_filter`` are dropped before their other fields are checked; the counts are in the JSON summary
    in ``info.description`` of the result (keys ``file``, ``rows_read``, ``rows_kept``,
    ``dropped_other_subset``, ``dropped_by_dataset_filter``, ``datasets_filter``).
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
    records: list[Record] = []
    dropped_subset = dropped_dataset = 0
    for index, item in enumerate(items):
        where = f"{name}: row id={f'huatuo-{index:06d}'!r} (row {index})"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(item).__name__}")
        modality = SUBSET_MODALITIES.get(_field(item, "subset", str, where))
        if modality is None:
            dropped_subset += 1
            continue
        benchmark = _field(item, "dataset", str, where)
        if datasets_filter is not None and benchmark not in datasets_filter:
            dropped_dataset += 1
            continue
        records.append(_record(item, index, modality, benchmark, where))
    summary = {
        "file": name,
        "rows_read": len(items),
        "rows_kept": len(records),
        "dropped_other_subset": dropped_subset,
        "dropped_by_dataset_filter": dropped_dataset,
        "datasets_filter": list(datasets_filter) if datasets_filter is not None else None,
    }
    with ImageStore(image_location) as store:
        return records_to_dataset(records, store, name, summary)


def _record(item: dict[str, Any], index: int, modality: str, benchmark: str, where: str) -> Record:
    """Check the fields of one kept object and turn it into a :class:`Record`."""
    question = _field(item, "question", str, where).strip()
    if not question:
        raise DataError(f"{where}: field 'question' is empty")
    raw_options = _field(item, "options", list, where)
    if not all(isinstance(o, str) for o in raw_options):
        raise DataError(f"{where}: field 'options' must be a list of strings, got {raw_options!r}")
    options = [o.strip() for o in raw_options]
    if not MIN_OPTIONS <= len(options) <= len(LETTERS):
        raise DataError(f"{where}: field 'options' has {len(options)} entries, expected {MIN_OPTIONS}..{len(LETTERS)}")
    answer = _field(item, "answer", str, where)
    if answer in raw_options:
        gold = raw_options.index(answer)
    elif answer.strip() in options:
        gold = options.index(answer.strip())
    else:
        raise DataError(f"{where}: field 'answer' {answer!r} is not among the options {raw_options!r}")
    paths = _field(item, "image", list, where)
    if not paths or not isinstance(paths[0], str) or not paths[0].strip():
        raise DataError(f"{where}: field 'image' must be a non-empty list of paths, got {paths!r}")
    return Record(
        id=f"huatuo-{index:06d}",
        row=index,
        question=question,
        options=options,
        answer=letter_of(gold),
        modality=modality,
        source=f"huatuo/{benchmark.lower()}",
        image=paths[0],
    )


def _field(item: dict[str, Any], field: str, kind: type, where: str) -> Any:
    """Return ``item[field]``, checked to be present and of type ``kind``."""
    if field not in item:
        raise DataError(f"{where}: field {field!r} is missing (expected the fields {list(FIELDS)})")
    value = item[field]
    if not isinstance(value, kind):
        raise DataError(f"{where}: field {field!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


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
