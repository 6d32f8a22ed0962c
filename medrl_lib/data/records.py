"""What the real-data loaders share: a parsed row (:class:`Record`), the images it names (:class:`ImageStore`, a zip
archive or a folder) and the dataset built from both (:func:`records_to_dataset`), with the drop warning.

:mod:`medrl_lib.data.pmc_vqa` and :mod:`medrl_lib.data.huatuo` parse their files into records; this module reads
the images and builds the common schema (:data:`medrl_lib.data.schema.FEATURES`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from medrl_lib.data.schema import (
    FEATURES,
    MISSING_IMAGE,
    DataError,
    DropLog,
    describe_drops,
    format_drops,
    normalise_path,
)

#: Zero-width characters that stray into the published text (removed by :func:`clean_text`).
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)
#: Rows whose image bytes are held in memory at once while a dataset is built.
CHUNK_ROWS = 1024


def looks_like_hub_id(source: str) -> bool:
    """Whether ``source`` has the form of a hub id ``owner/name`` (checked only once no local path matched).

    >>> looks_like_hub_id("xmcmic/PMC-VQA"), looks_like_hub_id("/data/pmc"), looks_like_hub_id("a/b/c")
    (True, False, False)
    """
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source) is not None


def clean_text(text: str) -> str:
    r"""Collapse every run of unicode whitespace to one space, remove zero-width characters, strip the ends.

    >>> clean_text("A:\u00a0Diffuse\u2009 uptake\n"), clean_text("B\u00a0"), clean_text("\u200bnan")
    ('A: Diffuse uptake', 'B', 'nan')
    """
    return " ".join(text.translate(INVISIBLE).split())



@dataclass
class Record:
    """One parsed row of a source file, before its image is read."""

    id: str
    """the row id of the common schema"""
    row: int
    """the 0-based index of the row in its source file"""
    question: str
    """the question text"""
    options: list[str]
    """the option texts, in letter order"""
    answer: str
    """the gold letter"""
    modality: str
    """one of :data:`~medrl_lib.data.schema.ALLOWED_MODALITIES`"""
    source: str
    """the ``source`` column"""
    image: str
    """the image's file name as the source file gives it"""


class ImageStore:
    """Image files by name, read from a zip archive or a folder (or nothing, where ``location`` is ``None``).

    A name (``Figure_path`` of PMC-VQA, an ``image`` path of the HuatuoGPT-Vision data) is looked up as given,
    then under the prefixes ``images/``, ``figures/``, ``images_2/`` and ``<archive stem>/``, then without
    its first folder (``images/x.png`` as ``x.png``), and last by its base name alone where exactly one file
    has that base name. Names with a ``..`` component are never looked up.
    """

    def __init__(self, location: str | os.PathLike[str] | None) -> None:
        """Open the archive or folder at ``location``."""
        self.location = Path(location) if location is not None else None
        self._zip: zipfile.ZipFile | None = None
        self._names: set[str] = set()
        self._by_base: dict[str, str | None] | None = None
        if self.location is None:
            return
        if self.location.is_dir():
            return
        if not self.location.is_file():
            raise FileNotFoundError(f"image archive or folder {str(self.location)!r} does not exist")
        if not zipfile.is_zipfile(self.location):
            raise DataError(f"{self.location.name}: not a zip archive (expected the image archive or a folder)")
        self._zip = zipfile.ZipFile(self.location)
        self._names = {name for name in self._zip.namelist() if not name.endswith("/")}

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive, if one is open."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def describe(self) -> str:
        """Say where images are looked up, for error messages."""
        if self.location is None:
            return "no image archive or folder"
        kind = "archive" if self._zip is not None else "folder"
        return f"image {kind} {str(self.location)!r}"

    def read(self, name: str) -> bytes | None:
        """Return the bytes of the image ``name``, or ``None`` where it is not found."""
        found = self.find(name)
        if found is None:
            return None
        if self._zip is not None:
            return self._zip.read(found)
        assert self.location is not None
        return (self.location / found).read_bytes()

    def find(self, name: str) -> str | None:
        """Return the member name (or path relative to the folder) that holds the image ``name``, if any."""
        if self.location is None:
            return None
        clean = normalise_path(name)
        parts = clean.split("/")
        if not clean or ".." in parts:
            return None
        stem = self.location.stem
        candidates = [clean] + [f"{p}/{clean}" for p in ("images", "figures", "images_2", stem)]
        if len(parts) > 1:
            candidates.append("/".join(parts[1:]))
        for candidate in candidates:
            if self._exists(candidate):
                return candidate
        return self._base_index().get(parts[-1])

    def _exists(self, name: str) -> bool:
        if self._zip is not None:
            return name in self._names
        assert self.location is not None
        return (self.location / name).is_file()

    def _base_index(self) -> dict[str, str | None]:
        """Map each base name to its only file (``None`` where several files share it); built on first use."""
        if self._by_base is None:
            index: dict[str, str | None] = {}
            for name in self._all_names():
                base = name.rsplit("/", 1)[-1]
                index[base] = None if base in index else name
            self._by_base = index
        return self._by_base

    def _all_names(self) -> Iterator[str]:
        if self._zip is not None:
            yield from self._names
            return
        assert self.location is not None
        for folder, _, files in os.walk(self.location):
            rel = Path(folder).relative_to(self.location).as_posix()
            for f in files:
                yield f if rel == "." else f"{rel}/{f}"


def records_to_dataset(
    records: Sequence[Record], store: ImageStore, drops: DropLog, summary: dict[str, Any]
) -> datasets.Dataset:
    """Read the image of every record from ``store`` and build a dataset with :data:`FEATURES`.

    Images are read :data:`CHUNK_ROWS` rows at a time and turned into Arrow data chunk by chunk, so the
    bytes are not held twice. A record whose image is not found (or is an empty file) is dropped into
    ``drops`` with the reason ``missing_image``. ``summary`` (the keys ``file``, ``rows_read`` and the
    loader's settings), completed with ``rows_kept`` and :meth:`~medrl_lib.data.schema.DropLog.summary`, is
    stored as JSON in ``info.description`` of the result. Where rows were dropped a :class:`UserWarning` gives the counts by
    reason (attributed to the loader's caller); where no row is kept, :class:`DataError` does.
    """
    parts: list[datasets.Dataset] = []
    kept = 0
    for start in range(0, len(records), CHUNK_ROWS):
        columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
        for r in records[start : start + CHUNK_ROWS]:
            data = store.read(r.image)
            if not data:
                what = "is an empty file" if data is not None else "not found"
                drops.drop(r.row, r.id, MISSING_IMAGE, f"image {r.image!r} {what} in {store.describe()}")
                continue
            columns["id"].append(r.id)
            columns["image"].append({"bytes": data, "path": None})
            columns["question"].append(r.question)
            columns["options"].append(r.options)
            columns["answer"].append(r.answer)
            columns["modality"].append(r.modality)
            columns["source"].append(r.source)
            columns["facts"].append("{}")
            columns["image_path"].append(r.image)
        if columns["id"]:
            kept += len(columns["id"])
            parts.append(datasets.Dataset.from_dict(columns, features=FEATURES))
    summary = {**summary, "rows_kept": kept, **drops.summary()}
    if not parts:
        raise DataError(f"{drops.file}: no row kept ({describe_drops(summary)})")
    if drops.total:
        warnings.warn(f"{drops.file}: {drop_message(summary)}", UserWarning, stacklevel=3)
    ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    ds.info.description = json.dumps(summary, sort_keys=True)
    return ds


def drop_message(summary: dict[str, Any]) -> str:
    """The text of the drop warning, e.g. ``dropped 2 of 5 rows (no_gold 1, unknown_modality 1)``."""
    dropped = summary["dropped"]
    return f"dropped {sum(dropped.values())} of {summary['rows_read']} rows ({format_drops(dropped)})"
