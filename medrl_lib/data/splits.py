"""The train/test splits of the two papers, drawn with a fixed seed, and a writer of their id lists.

:func:`make_splits` gives a profile's (train, test) items: generated synthetic items, or one of the splits below.

Zhu et al. name a 10K/7K subset of PMC-VQA without releasing it. PMC-VQA publishes a training file
(``train_2.csv``) and a test file (``test_2.csv``), so :func:`zhu_split_files` draws the training rows from the
training file and the test rows from the test file; :func:`zhu_split` draws both from one file. MedVLM-R1
published its 900 test items (:func:`medrl_lib.data.medvlm_r1_test_items`): :func:`medvlm_r1_published_split`
finds them in the HuatuoGPT-Vision evaluation data and draws the 600 MRI training items from the other MRI rows.
Every draw is a ``numpy`` Generator permutation, so a split depends only on the seed and on the rows of the
datasets in their order (a different loader setting, such as PMC-VQA's ``unknown_modality``, gives a different
split). A run stores the ids it trained and tested on as ``train_ids.json`` and ``test_ids.json`` in its run
folder (:func:`medrl_lib.experiments.results.cached_run`); :func:`write_split_ids` writes the id lists of a split, with
their seed and modality counts, as one JSON file.

**Disjoint by image.** PMC-VQA asks about 1.5 questions per figure (about 227K questions on 149K figures), and
its training and test files share figures; OmniMedVQA asks several questions on one image too. A split by row
would put the same figure in train and test. So every split here keeps train and test disjoint by image: two
rows show the same image when their :func:`image_keys` are equal (the base name of ``image_path``; a row without
``image_path`` is an image of its own). The rows excluded from training for sharing an image with a test row are
counted.

The rows of each returned split keep the order they have in the dataset (the drawn indices are sorted; the test
rows of :func:`medvlm_r1_published_split` are in the published order instead), and its ``info.description``
(the loader summary, :func:`~medrl_lib.data.schema.load_summary`), to which the split adds the key ``split``
(its name, seed, sizes and exclusion counts) where the dataset has a loader summary. Where a dataset
is too small for the sizes asked, the :class:`ValueError` names the sizes and, for a loaded dataset, how many
rows the loader kept and dropped by reason, e.g. "(the loader kept 812 of 900 rows of train_2.csv; dropped:
missing_image 3, no_gold 2)".
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from medrl_lib.common.files import write_json
from medrl_lib.data.records import clean_text
from medrl_lib.data.schema import DataError, describe_drops, image_key, load_summary, normalise_path

if TYPE_CHECKING:
    from medrl_lib.config import Profile


def image_keys(ds: datasets.Dataset) -> list[str | None]:
    """The image of each row of ``ds`` as a key: the base name of ``image_path`` (backslashes read as slashes,
    surrounding whitespace stripped), so that ``"images/x.png"``, ``"x.png"`` and ``" ./images/x.png "`` are one
    image; ``None`` (an image of its own, equal to no other) where the column is absent or the path empty.

    >>> ds = datasets.Dataset.from_dict({"image_path": ["images/a.png", " a.png ", "b\\c.png", ""]})
    >>> image_keys(ds)
    ['a.png', 'a.png', 'c.png', None]
    """
    if "image_path" not in ds.column_names:
        return [None] * len(ds)
    return [image_key(p) for p in ds["image_path"]]


def zhu_split(
    ds: datasets.Dataset, *, n_train: int = 10_000, n_test: int = 7_000, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Draw Zhu et al.'s ``n_train`` training and ``n_test`` test rows from the one dataset ``ds``, disjoint by
    image.

    The rows are grouped by image (:func:`image_keys`; a row without an image path is a group of its own), the
    groups put in the order of ``numpy.random.default_rng(seed).permutation`` (the rows of a group in dataset
    order), and the first ``n_test`` rows of that order are the test rows. The rows after them whose image is
    not a test row's are the candidates for training, and the first ``n_train`` of them the training rows: only
    the rest of the last test image's rows can be skipped, and they are counted as
    ``train_rows_sharing_a_test_image`` in the ``split`` entry of the summary (see the module docstring).
    Raises :class:`ValueError` naming the sizes where ``ds`` has fewer than ``n_train + n_test`` rows, or
    fewer than ``n_train`` rows outside the test images.

    Use :func:`zhu_split_files` where the source publishes a training and a test file (PMC-VQA does).
    """
    _check_count("n_train", n_train)
    _check_count("n_test", n_test)
    if n_train + n_test > len(ds):
        raise ValueError(
            f"zhu_split: the dataset has {len(ds)} rows, fewer than n_train + n_test = {n_train} + {n_test}"
            f" = {n_train + n_test}{_loader_note(ds)}"
        )
    keys = image_keys(ds)
    groups = _groups(keys)
    order = np.random.default_rng(seed).permutation(len(groups))
    rows = [i for g in order for i in groups[g]]
    test = rows[:n_test]
    test_images = {keys[i] for i in test} - {None}
    rest = [i for i in rows[n_test:] if keys[i] is None or keys[i] not in test_images]
    excluded = len(ds) - n_test - len(rest)
    if n_train > len(rest):
        raise ValueError(
            f"zhu_split: after the {n_test} test rows, {len(rest)} rows of the dataset's {len(ds)} show no test"
            f" image ({excluded} share one), fewer than n_train = {n_train}{_loader_note(ds)}"
        )
    train = rest[:n_train]
    note = {"name": "zhu", "seed": int(seed), "n_train": n_train, "n_test": n_test,
            "train_rows_sharing_a_test_image": excluded,
            "train_images": _image_count(keys, train), "test_images": _image_count(keys, test)}
    return _select(ds, np.sort(train), note), _select(ds, np.sort(test), note)


def zhu_split_files(
    train_ds: datasets.Dataset,
    test_ds: datasets.Dataset,
    *,
    n_train: int = 10_000,
    n_test: int = 7_000,
    seed: int = 0,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Draw Zhu et al.'s ``n_train`` training rows from ``train_ds`` (PMC-VQA's ``train_2.csv``) and ``n_test``
    test rows from ``test_ds`` (``test_2.csv``), disjoint by image.

    The test rows are the first ``n_test`` of ``numpy.random.default_rng([seed, crc32(b"test")])``'s permutation
    of ``test_ds``. Every row of ``train_ds`` whose image (:func:`image_keys`) is among the drawn test rows' is
    then excluded, and counted (``train_rows_sharing_a_test_image`` in the ``split`` entry of the summary of
    both results, beside ``file`` of each side, the sizes and the seed); the training rows are the first
    ``n_train`` of ``numpy.random.default_rng([seed, crc32(b"train")])``'s permutation of the rows left. Raises
    :class:`ValueError` naming the sizes where ``test_ds`` has fewer than ``n_test`` rows or fewer than
    ``n_train`` training rows are left, and where the two datasets share a row id.
    """
    _check_count("n_train", n_train)
    _check_count("n_test", n_test)
    if n_test > len(test_ds):
        raise ValueError(
            f"zhu_split_files: the test dataset has {len(test_ds)} rows, fewer than n_test = {n_test}"
            f"{_loader_note(test_ds)}"
        )
    shared_ids = sorted(set(train_ds["id"]) & set(test_ds["id"]))
    if shared_ids:
        raise ValueError(f"zhu_split_files: the two datasets share {len(shared_ids)} row id(s), e.g. {shared_ids[:5]}")
    test = np.random.default_rng([seed, zlib.crc32(b"test")]).permutation(len(test_ds))[:n_test]
    test_keys = image_keys(test_ds)
    test_images = {test_keys[i] for i in test} - {None}
    train_keys = image_keys(train_ds)
    eligible = np.asarray([i for i, k in enumerate(train_keys) if k is None or k not in test_images], dtype=np.int64)
    excluded = len(train_ds) - len(eligible)
    if n_train > len(eligible):
        raise ValueError(
            f"zhu_split_files: the training dataset has {len(train_ds)} rows, {excluded} of which show an image of"
            f" the {n_test} test rows; the {len(eligible)} left are fewer than n_train = {n_train}"
            f"{_loader_note(train_ds)}"
        )
    train = np.random.default_rng([seed, zlib.crc32(b"train")]).permutation(eligible)[:n_train]
    note = {"name": "zhu-files", "seed": int(seed), "n_train": n_train, "n_test": n_test,
            "train_file": load_summary(train_ds).get("file"), "test_file": load_summary(test_ds).get("file"),
            "train_rows_sharing_a_test_image": excluded,
            "train_images": _image_count(train_keys, train), "test_images": _image_count(test_keys, test)}
    return _select(train_ds, np.sort(train), note), _select(test_ds, np.sort(test), note)


def medvlm_r1_published_split(
    ds: datasets.Dataset,
    *,
    n_train_mri: int = 600,
    seed: int = 0,
    test_items: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """MedVLM-R1's split of the HuatuoGPT-Vision evaluation data ``ds``: its published test items and
    ``n_train_mri`` MRI training rows drawn from the other MRI rows.

    ``test_items`` (default: :func:`medrl_lib.data.medvlm_r1_test_items`, the 900 published items) are dicts
    with ``image`` (a path) and ``question``, and optionally ``modality`` and ``index``. Each is matched to the
    row of ``ds`` with the same image (:func:`image_key`: the base name, so ``"images/x.png"`` matches
    ``"x.png"``) and the same question (compared after :func:`~medrl_lib.data.records.clean_text`: runs of
    whitespace collapsed, zero-width characters removed, ends stripped). Where several rows match, those whose
    whole path (:func:`~medrl_lib.data.schema.normalise_path`) matches the item's are preferred; where several
    candidates are left, they must be copies of one row (the same ``options`` and ``answer``): the first in
    dataset order is taken and the item is counted as ``ambiguous_test_items`` in the ``split`` entry of the
    summary (the other copies show the same image, so they are never training rows either). The test rows are
    returned in the order of ``test_items``. Raises :class:`~medrl_lib.data.schema.DataError` (a
    :class:`ValueError`) where an item's candidates differ in ``options`` or ``answer`` (the message names the
    item's index, image and question and the number of candidates), and :class:`ValueError` where items are not
    found (the message says how many, of how many rows, and gives the first few with their index, image and
    question, and the loader's drop counts: a dropped row cannot be matched), where an item's ``modality`` is
    not its row's, and where two items name the same row.

    The training rows are the first ``n_train_mri`` of ``numpy.random.default_rng([seed, crc32(b"MRI")])``'s
    permutation of the MRI rows of ``ds`` that are not test rows and show no test item's image; the rows
    excluded for sharing an image are counted in the ``split`` entry of the summary. Raises
    :class:`ValueError` where fewer MRI rows are left than ``n_train_mri``.
    """
    _check_count("n_train_mri", n_train_mri)
    if test_items is None:
        from medrl_lib.data import medvlm_r1_test_items

        test_items = medvlm_r1_test_items()
    items = list(test_items)
    paths = list(ds["image_path"]) if "image_path" in ds.column_names else [""] * len(ds)
    keys = [image_key(p) for p in paths]
    index: dict[tuple[str | None, str], list[int]] = {}
    for i, (key, question) in enumerate(zip(keys, ds["question"])):
        index.setdefault((key, clean_text(question or "")), []).append(i)
    ids = list(ds["id"])
    answers: datasets.Dataset | None = None  # the options and answers, read where an item has several candidates
    test: list[int] = []
    missing: list[str] = []
    ambiguous = 0
    for k, item in enumerate(items):
        path, question = str(item.get("image") or ""), str(item.get("question") or "")
        found = index.get((image_key(path), clean_text(question)), [])
        if not found:
            missing.append(f"item {item.get('index', k)} (image {path!r}, question {question!r})")
            continue
        candidates = [i for i in found if normalise_path(paths[i]) == normalise_path(path)] or found
        if len(candidates) > 1:
            if answers is None:
                answers = ds.select_columns(["options", "answer"])
            if len({json.dumps([answers[i]["options"], answers[i]["answer"]]) for i in candidates}) > 1:
                raise DataError(
                    f"medvlm_r1_published_split: item {item.get('index', k)} (image {path!r}, question {question!r})"
                    f" matches {len(candidates)} rows that differ in options or answer"
                    f" ({', '.join(ids[i] for i in candidates[:5])}): which one was published cannot be told"
                )
            ambiguous += 1
        test.append(candidates[0])
    if missing:
        raise ValueError(
            f"medvlm_r1_published_split: {len(missing)} of the {len(items)} published test items are not among the"
            f" {len(ds)} rows of the dataset (matched by image file name and question), e.g. {'; '.join(missing[:3])}"
            f"{_loader_note(ds)}"
        )
    modality = list(ds["modality"])
    wrong = [f"item {item.get('index', k)} is {item['modality']!r}, its row {ids[i]!r} {modality[i]!r}"
             for k, (item, i) in enumerate(zip(items, test)) if "modality" in item and item["modality"] != modality[i]]
    if wrong:
        raise ValueError(f"medvlm_r1_published_split: {len(wrong)} published test items match a row of another"
                         f" modality, e.g. {'; '.join(wrong[:3])}")
    twice = [i for i, n in Counter(test).items() if n > 1]
    if twice:
        raise ValueError(f"medvlm_r1_published_split: {len(twice)} rows are named by more than one test item")
    test_set = set(test)
    test_images = {keys[i] for i in test} - {None}
    mri = [i for i, m in enumerate(modality) if m == "MRI" and i not in test_set]
    eligible = np.asarray([i for i in mri if keys[i] is None or keys[i] not in test_images], dtype=np.int64)
    excluded = len(mri) - len(eligible)
    if n_train_mri > len(eligible):
        raise ValueError(
            f"medvlm_r1_published_split: {len(eligible)} MRI rows are neither test rows nor show a test image"
            f" ({excluded} more show one), fewer than n_train_mri={n_train_mri}{_loader_note(ds)}"
        )
    train = np.random.default_rng([seed, zlib.crc32(b"MRI")]).permutation(eligible)[:n_train_mri]
    note = {"name": "medvlm-r1-published", "seed": int(seed), "n_train": n_train_mri, "n_test": len(test),
            "train_rows_sharing_a_test_image": excluded, "ambiguous_test_items": ambiguous,
            "train_images": _image_count(keys, train), "test_images": _image_count(keys, test)}
    return _select(ds, np.sort(train), note), _select(ds, np.asarray(test, dtype=np.int64), note)


#: Qwen2-VL's image processor resizes to multiples of this many pixels (patch 14 x merge 2), with at least
#: :data:`RESIZE_MIN_PIXELS` pixels: the stored splits of hub profiles hold their images at that size.
RESIZE_FACTOR, RESIZE_MIN_PIXELS = 28, 56 * 56
#: Bump when the stored form of a split changes.
STORED_VERSION = 1


def make_splits(profile: Profile) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test) of :func:`build_splits`; for the published datasets (PMC-VQA, HuatuoGPT-Vision), built once and
    stored (:func:`stored_splits`), then memory-mapped by every process and arm that asks."""
    if profile.data.source == "synthetic":  # generated in a moment, in memory
        return build_splits(profile)
    return stored_splits(profile)


def split_key(profile: Profile) -> str:
    """The stored splits' key: the data settings, the pixel limit their images are resized to, and each local
    source file's size and modification time (a changed file is read again)."""
    import dataclasses
    import hashlib

    from medrl_lib.data.sources import resolve_data_source

    d = profile.data
    files = {}
    for source in (d.pmc_vqa_path, d.huatuo_path):
        path = Path(resolve_data_source(source)) if source else None
        if path is not None and path.exists():
            for f in sorted(path.rglob("*") if path.is_dir() else [path]):
                if f.is_file():
                    st = f.stat()
                    files[str(f)] = [st.st_size, st.st_mtime_ns]
    blob = json.dumps({"data": dataclasses.asdict(d), "max_pixels": profile.model.max_pixels,
                       "version": STORED_VERSION, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resize_images(ds: datasets.Dataset, max_pixels: int | None, desc: str) -> datasets.Dataset:
    """``ds`` with every image in RGB at the size Qwen2-VL's processor gives it under ``max_pixels`` (its
    ``smart_resize``, bicubic as the processor): the processor then leaves it at that size."""
    if not max_pixels:
        return ds
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from medrl_lib.rl.vllm_inputs import resized

    def fit(row):
        image = row["image"]
        h, w = smart_resize(image.height, image.width, factor=RESIZE_FACTOR, min_pixels=RESIZE_MIN_PIXELS,
                            max_pixels=max_pixels)
        return {"image": resized(image, (w, h))}

    return ds.map(fit, desc=desc)


def stored_splits(profile: Profile) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test) of :func:`build_splits`, stored under ``<cache_dir>/splits/<key>`` (:func:`split_key`): built
    once, by the first process that asks (the others wait on a file lock), with each image decoded and resized
    once (:func:`resize_images`), written to a temporary folder and renamed into place; then loaded with
    ``datasets.load_from_disk``, whose Arrow files are memory-mapped: every process and arm reads the same pages,
    and a split handed to a worker process is pickled as its file paths."""
    import shutil

    from filelock import FileLock

    from medrl_lib.config import resolve_path

    folder = resolve_path(profile.cache_dir) / "splits" / split_key(profile)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not (folder / "done").exists():
            train, test = build_splits(profile)
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            for name, ds in (("train", train), ("test", test)):
                resize_images(ds, profile.model.max_pixels, f"{name} images").save_to_disk(str(tmp / name))
            (tmp / "done").write_text(json.dumps({"train": len(train), "test": len(test)}))
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
    return datasets.load_from_disk(str(folder / "train")), datasets.load_from_disk(str(folder / "test"))


def build_splits(profile: Profile) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, test) in the common schema, with disjoint ids.

    * ``synthetic``: train on ``data.train_modalities``, ``data.test_per_modality`` test items per modality;
    * ``pmc-vqa``: Zhu's subset: ``data.train_size`` training items drawn with ``data.seed`` from PMC-VQA's
      ``train_2.csv`` and ``data.test_size`` test items from its ``test_2.csv``, disjoint by image; no row is selected
      by its label (``data.pmc_vqa_path``: a local folder; a single CSV file is split by image instead; empty: the
      hub);
    * ``huatuo-eval``: MedVLM-R1's split of the HuatuoGPT-Vision evaluation data (``data.huatuo_path``; empty: the
      hub): its published test items (:func:`medrl_lib.data.medvlm_r1_test_items`, the first
      ``data.test_per_modality`` of each modality in the published order: all 300 on the paper profile) and
      ``data.train_size`` MRI training items drawn from the other MRI items, sharing no image with a test item.

    The loaders skip malformed rows and count them by reason: :func:`medrl_lib.data.schema.load_summary` of
    either split gives the counts (every run stores them as ``data.json``).
    """
    from medrl_lib.data.sources import resolve_data_source

    d = profile.data
    if d.source == "pmc-vqa":
        from medrl_lib.data.pmc_vqa import HUB_ID, load_pmc_vqa

        source = resolve_data_source(d.pmc_vqa_path) or HUB_ID
        if Path(source).is_file():  # one CSV: split it by image
            return zhu_split(load_pmc_vqa(source), n_train=d.train_size, n_test=d.test_size, seed=d.seed)
        train, test = load_pmc_vqa(source, csv="train_2.csv"), load_pmc_vqa(source, csv="test_2.csv")
        return zhu_split_files(train, test, n_train=d.train_size, n_test=d.test_size, seed=d.seed)
    if d.source == "huatuo-eval":
        from medrl_lib.data import medvlm_r1_test_items
        from medrl_lib.data.huatuo import HUB_ID, load_huatuo_eval

        ds = load_huatuo_eval(resolve_data_source(d.huatuo_path) or HUB_ID)
        return medvlm_r1_published_split(ds, n_train_mri=d.train_size, seed=d.seed,
                                         test_items=medvlm_r1_test_items(d.test_per_modality))
    from medrl_lib.data.synthetic import SyntheticConfig, generate

    common = dict(image_size=d.image_size, min_options=d.min_options, max_options=d.max_options,
                  option_order=d.option_order)
    train = generate(SyntheticConfig(n_items=d.train_size, modalities=tuple(d.train_modalities), seed=d.seed,
                                     id_prefix="train", **common))
    test = generate(SyntheticConfig(n_items=d.test_per_modality * len(d.test_modalities),
                                    modalities=tuple(d.test_modalities), seed=d.seed + 1, id_prefix="test", **common))
    overlap = set(train["id"]) & set(test["id"])
    if overlap:
        raise RuntimeError(f"train and test share ids: {sorted(overlap)[:3]}")
    return train, test


def write_split_ids(
    path: str | Path,
    train: datasets.Dataset,
    test: datasets.Dataset,
    *,
    seed: int,
    split: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the id lists of a split as JSON, atomically, and return what was written.

    The object has the keys ``train`` and ``test`` (the ids, in row order), ``seed``, ``split`` (the name of
    the split, e.g. ``"zhu"`` or ``"medvlm-r1"``), ``n_train``, ``n_test``, ``modalities`` (the count of each
    modality in ``train`` and in ``test``) and the items of ``extra`` (which may not reuse these keys).
    Raises :class:`ValueError` where the two splits share an id.

    >>> import tempfile, pathlib
    >>> a = datasets.Dataset.from_dict({"id": ["p-1", "p-2"], "modality": ["CT", "MRI"]})
    >>> b = datasets.Dataset.from_dict({"id": ["p-3"], "modality": ["CT"]})
    >>> out = write_split_ids(pathlib.Path(tempfile.mkdtemp()) / "split.json", a, b, seed=0, split="zhu")
    >>> out["train"], out["test"], out["modalities"]["train"]
    (['p-1', 'p-2'], ['p-3'], {'CT': 1, 'MRI': 1})
    """
    train_ids = [str(i) for i in train["id"]]
    test_ids = [str(i) for i in test["id"]]
    shared = sorted(set(train_ids) & set(test_ids))
    if shared:
        raise ValueError(f"write_split_ids: train and test share {len(shared)} id(s), e.g. {shared[:5]}")
    obj: dict[str, Any] = {
        "split": split,
        "seed": seed,
        "n_train": len(train_ids),
        "n_test": len(test_ids),
        "modalities": {"train": _modality_counts(train), "test": _modality_counts(test)},
        "train": train_ids,
        "test": test_ids,
    }
    clash = sorted(set(obj) & set(extra or {}))
    if clash:
        raise ValueError(f"write_split_ids: extra may not set the keys {clash}")
    obj.update(extra or {})
    write_json(path, obj)
    return obj


def _groups(keys: Sequence[str | None]) -> list[list[int]]:
    """The row indices of each image, images in order of first appearance; a row without image is alone."""
    groups: list[list[int]] = []
    where: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is None:
            groups.append([i])
        elif key in where:
            groups[where[key]].append(i)
        else:
            where[key] = len(groups)
            groups.append([i])
    return groups


def _image_count(keys: Sequence[str | None], rows: Sequence[int]) -> int:
    """The number of distinct images of ``rows`` (``keys`` from :func:`image_keys`; a row without image counts as
    one image of its own).

    >>> _image_count(["a.png", "a.png", None, None, "b.png"], [0, 1, 2, 3])
    3
    """
    return len({keys[i] if keys[i] is not None else ("row", int(i)) for i in rows})


def _select(ds: datasets.Dataset, indices: np.ndarray, note: dict[str, Any]) -> datasets.Dataset:
    """``ds.select(indices)``, with ``note`` stored as ``split`` in its summary where the description is a loader
    summary (a JSON object); another description (none, for generated data) is left as it is."""
    out = ds.select(indices)
    summary = load_summary(out)
    if summary:
        out.info.description = json.dumps({**summary, "split": note}, sort_keys=True)
    return out


def _modality_counts(ds: datasets.Dataset) -> dict[str, int]:
    if "modality" not in ds.column_names:
        return {}
    return dict(sorted(Counter(str(m) for m in ds["modality"]).items()))


def _loader_note(ds: datasets.Dataset) -> str:
    """`` (the loader kept ...; dropped: ...)`` for a dataset with a loader summary, else ``""``."""
    text = describe_drops(load_summary(ds))
    return f" ({text})" if text else ""


def _check_count(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
