"""The train/test splits of the two papers, drawn with a fixed seed, and the publication of their id lists.

Neither paper released its split: Zhu et al. name a 10K/7K subset of PMC-VQA, MedVLM-R1 600 MRI training
items and 300 MRI / 300 CT / 300 X-ray test items of the HuatuoGPT-Vision evaluation data. Both are drawn
here from a ``numpy`` Generator permutation of row indices, so a split depends only on the seed and on the
rows of the dataset in their order (a different loader setting, such as PMC-VQA's ``unknown_modality``,
gives a different split). Every run publishes its id lists with :func:`write_split_ids`.

The rows of each returned split keep the order they have in the dataset (the drawn indices are sorted), and
its ``info.description`` (the loader summary, :func:`~medrl_lib.data.schema.load_summary`). Where a dataset
is too small for the sizes asked, the :class:`ValueError` names the sizes and, for a loaded dataset, how many
rows the loader kept and dropped by reason, e.g. "(the loader kept 812 of 900 rows of train_2.csv; dropped:
missing_image 3, no_gold 2)".
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from medrl_lib.data.schema import MODALITIES, describe_drops, load_summary
from medrl_lib.results import write_json


def zhu_split(
    ds: datasets.Dataset, *, n_train: int = 10_000, n_test: int = 7_000, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Draw Zhu et al.'s disjoint ``n_train`` training and ``n_test`` test rows from ``ds``.

    The first ``n_train`` indices of ``numpy.random.default_rng(seed).permutation(len(ds))`` are the
    training rows and the next ``n_test`` the test rows. Raises :class:`ValueError` naming the sizes where
    ``ds`` has fewer than ``n_train + n_test`` rows.
    """
    _check_count("n_train", n_train)
    _check_count("n_test", n_test)
    if n_train + n_test > len(ds):
        raise ValueError(
            f"zhu_split: the dataset has {len(ds)} rows, fewer than n_train + n_test = {n_train} + {n_test}"
            f" = {n_train + n_test}{_loader_note(ds)}"
        )
    order = np.random.default_rng(seed).permutation(len(ds))
    train = np.sort(order[:n_train])
    test = np.sort(order[n_train : n_train + n_test])
    return ds.select(train), ds.select(test)


def medvlm_r1_split(
    ds: datasets.Dataset, *, n_train_mri: int = 600, n_test_per_modality: int = 300, seed: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Draw MedVLM-R1's split from ``ds``: ``n_train_mri`` MRI training rows and ``n_test_per_modality``
    test rows of each of MRI, CT and X-ray, the training rows disjoint from the test rows.

    The rows of each modality are permuted by their own Generator, seeded with ``(seed, crc32(modality))``
    (so adding rows of one modality leaves the others' draw unchanged): the first ``n_test_per_modality``
    are test rows, and for MRI the next ``n_train_mri`` the training rows. Rows of other modalities are never
    drawn. Raises :class:`ValueError` naming each modality that has too few rows, its count and the count
    needed.
    """
    _check_count("n_train_mri", n_train_mri)
    _check_count("n_test_per_modality", n_test_per_modality)
    modality = np.asarray(list(ds["modality"]), dtype=object)
    rows = {m: np.flatnonzero(modality == m) for m in MODALITIES}
    need = {m: n_test_per_modality + (n_train_mri if m == "MRI" else 0) for m in MODALITIES}
    short = [f"{m!r} has {len(rows[m])} rows, needs {need[m]}" for m in MODALITIES if len(rows[m]) < need[m]]
    if short:
        raise ValueError(
            f"medvlm_r1_split: too few rows ({'; '.join(short)}) for n_train_mri={n_train_mri},"
            f" n_test_per_modality={n_test_per_modality}{_loader_note(ds)}"
        )
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for m in MODALITIES:
        drawn = np.random.default_rng([seed, zlib.crc32(m.encode())]).permutation(rows[m])
        test.append(drawn[:n_test_per_modality])
        if m == "MRI":
            train.append(drawn[n_test_per_modality : n_test_per_modality + n_train_mri])
    return ds.select(np.sort(np.concatenate(train))), ds.select(np.sort(np.concatenate(test)))


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
