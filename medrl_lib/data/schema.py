"""The common schema of every dataset in medrl_lib, and its validation.

Every loader (synthetic items, PMC-VQA, the HuatuoGPT-Vision evaluation data) produces a
:class:`datasets.Dataset` whose features equal :data:`FEATURES`:

- ``id``: a unique string per row;
- ``image``: the image (stored as PNG or as the original file's bytes);
- ``question``: the question text, without the options;
- ``options``: the option texts WITHOUT letter prefixes, in letter order A, B, C, ...;
- ``answer``: the gold letter, ``"A"`` to ``"F"``;
- ``modality``: one of :data:`MODALITIES`, or :data:`OTHER_MODALITY` for a real row whose modality is none of
  them or cannot be told (PMC-VQA: the question names none; see :func:`medrl_lib.data.pmc_vqa.infer_modality`);
- ``source``: where the row comes from (``"synthetic"``, ``"pmc-vqa"``, ...);
- ``facts``: a JSON object with the ground-truth facts of a synthetic item, ``"{}"`` for real data;
- ``image_path``: the image's file name as the source gives it (PMC-VQA: ``Figure_path``; HuatuoGPT-Vision: the
  first path of ``image``, e.g. ``"images/brain002206.png"``; synthetic: ``"<id>.png"``, one image per row). Rows
  with the same ``image_path`` show the same image: the splits keep train and test disjoint by it
  (:mod:`medrl_lib.data.splits`). An empty value means "an image of its own".

:func:`validate_rows` checks a dataset against the rules of this schema without decoding images.

The real-data loaders skip malformed rows and count them by reason in a :class:`DropLog` (the reasons both
loaders share, :data:`EMPTY_QUESTION`, :data:`EMPTY_IMAGE` and :data:`MISSING_IMAGE`, are defined here), and store
a JSON summary of what they read and dropped in ``info.description`` of the dataset they return (see
:mod:`medrl_lib.data.pmc_vqa` and :mod:`medrl_lib.data.huatuo`); :func:`load_summary` reads it back
(``Dataset.select``, used by the splits, keeps it), :func:`describe_drops` words it for messages and
:func:`format_drops` words its drop counts. :func:`normalise_path` cleans an image path up for lookups and
comparisons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import pyarrow.compute as pc

MODALITIES: tuple[str, ...] = ("MRI", "CT", "X-ray")
"""The imaging modalities of the papers' per-modality results (synthetic items and MedVLM-R1's split have only
these)."""

OTHER_MODALITY = "other"
"""The ``modality`` of a real row that is none of :data:`MODALITIES` or cannot be told (kept in Zhu et al.'s
PMC-VQA pool, which is not filtered by modality)."""

ALLOWED_MODALITIES: tuple[str, ...] = (*MODALITIES, OTHER_MODALITY)
"""The values the ``modality`` column may hold."""

LETTERS = "ABCDEF"
"""The option letters, in order; a row has between 2 and ``len(LETTERS)`` options."""

MIN_OPTIONS = 2
"""The fewest options a row may have."""

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Image(),
        "question": datasets.Value("string"),
        "options": datasets.List(datasets.Value("string")),
        "answer": datasets.Value("string"),
        "modality": datasets.Value("string"),
        "source": datasets.Value("string"),
        "facts": datasets.Value("string"),
        "image_path": datasets.Value("string"),
    }
)
"""The features of every dataset in the package, in column order."""


class DataError(ValueError):
    """A row breaks the schema; the message names the dataset, the row id and the field."""


EMPTY_QUESTION = "empty_question"
"""The drop reason of a row whose question is empty (both loaders)."""

EMPTY_IMAGE = "empty_image"
"""The drop reason of a row that names no image (both loaders)."""

MISSING_IMAGE = "missing_image"
"""The drop reason of a row whose image file is not found, or is empty (both loaders)."""

MAX_DROPPED_ROWS = 200
"""The most entries of ``dropped_rows`` kept in a load summary (the counts are always complete)."""

_MAX_DETAIL = 160  # characters of the ``detail`` of a dropped row


def letter_of(i: int) -> str:
    """Return the option letter of the 0-based option index ``i``.

    >>> letter_of(0), letter_of(5)
    ('A', 'F')
    """
    if not 0 <= i < len(LETTERS):
        raise ValueError(f"option index {i} is outside 0..{len(LETTERS) - 1}")
    return LETTERS[i]


def index_of(letter: str) -> int:
    """Return the 0-based option index of the option letter ``letter``.

    >>> index_of("A"), index_of("F")
    (0, 5)
    """
    if len(letter) != 1 or letter not in LETTERS:
        raise ValueError(f"{letter!r} is not an option letter ({LETTERS[0]}..{LETTERS[-1]})")
    return LETTERS.index(letter)


def validate_rows(ds: datasets.Dataset, name: str) -> None:
    """Check every row of ``ds`` against the schema; raise :class:`DataError` at the first bad row.

    The checks: ``id`` is a non-empty string, unique in the dataset; ``options`` has
    ``MIN_OPTIONS``..``len(LETTERS)`` entries; ``answer`` is one of the first ``len(options)``
    letters; ``image`` is present; ``modality`` is one of :data:`ALLOWED_MODALITIES` (:data:`MODALITIES` or
    :data:`OTHER_MODALITY`). The columns are read
    as Arrow data, so no image is decoded. ``name`` (a dataset or file name) opens every message.
    """
    columns = ["id", "image", "options", "answer", "modality"]
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{name}: missing column(s) {missing}")
    table = ds.select_columns(columns).with_format("arrow")[:]
    image = table.column("image")
    has_image = pc.and_(
        pc.is_valid(image),
        pc.or_(pc.is_valid(pc.struct_field(image, "bytes")), pc.is_valid(pc.struct_field(image, "path"))),
    ).to_pylist()
    seen: set[str] = set()
    rows = zip(
        table.column("id").to_pylist(),
        table.column("options").to_pylist(),
        table.column("answer").to_pylist(),
        table.column("modality").to_pylist(),
        has_image,
    )
    for row, (row_id, options, answer, modality, present) in enumerate(rows):
        where = f"{name}: row id={row_id!r} (row {row})"
        if not row_id:
            raise DataError(f"{where}: field 'id' is empty")
        if row_id in seen:
            raise DataError(f"{where}: field 'id' is a duplicate")
        seen.add(row_id)
        n = len(options or [])
        if not MIN_OPTIONS <= n <= len(LETTERS):
            raise DataError(f"{where}: field 'options' has {n} entries, expected {MIN_OPTIONS}..{len(LETTERS)}")
        if answer is None or len(answer) != 1 or answer not in LETTERS[:n]:
            raise DataError(f"{where}: field 'answer' is {answer!r}, expected one of {LETTERS[:n]}")
        if not present:
            raise DataError(f"{where}: field 'image' is missing")
        if modality not in ALLOWED_MODALITIES:
            raise DataError(f"{where}: field 'modality' is {modality!r}, expected one of {ALLOWED_MODALITIES}")


def load_summary(ds: datasets.Dataset) -> dict[str, Any]:
    """Return the loader summary stored as JSON in ``ds.info.description``.

    The summary of a loaded PMC-VQA or HuatuoGPT-Vision dataset has the keys ``file``, ``rows_read``,
    ``rows_kept``, ``dropped`` (reason -> count), ``dropped_rows`` and ``dropped_rows_truncated``, and the
    loader's settings. A dataset without a description, or whose description is not a JSON object (a
    synthetic dataset, one built by hand), gives ``{}``.

    >>> ds = datasets.Dataset.from_dict({"id": ["a"]})
    >>> load_summary(ds)
    {}
    >>> ds.info.description = '{"file": "train_2.csv", "rows_read": 3}'
    >>> load_summary(ds.select([0]))
    {'file': 'train_2.csv', 'rows_read': 3}
    """
    text = ds.info.description
    if not text:
        return {}
    try:
        summary = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return summary if isinstance(summary, dict) else {}


def describe_drops(summary: Mapping[str, Any]) -> str:
    """Word a loader summary (:func:`load_summary`) for a message: the rows kept and the non-zero drop counts,
    the most frequent reason first; ``""`` where ``summary`` is not a loader summary.

    >>> describe_drops({"file": "train_2.csv", "rows_read": 900, "rows_kept": 895,
    ...                 "dropped": {"no_gold": 2, "missing_image": 3, "empty_question": 0}})
    'the loader kept 895 of 900 rows of train_2.csv; dropped: missing_image 3, no_gold 2'
    >>> describe_drops({})
    ''
    """
    if "rows_read" not in summary or "rows_kept" not in summary:
        return ""
    text = f"the loader kept {summary['rows_kept']} of {summary['rows_read']} rows of {summary.get('file', '?')}"
    dropped = format_drops(summary.get("dropped") or {})
    return f"{text}; dropped: {dropped}" if dropped else text


def format_drops(dropped: Mapping[str, int]) -> str:
    """Word the drop counts ``dropped`` (reason -> count, as in a loader summary): the non-zero counts, the most
    frequent reason first (ties by name); ``""`` where nothing was dropped.

    >>> format_drops({"missing_image": 1, "no_gold": 2, "empty_question": 0})
    'no_gold 2, missing_image 1'
    >>> format_drops({"no_gold": 0})
    ''
    """
    ranked = sorted(((reason, n) for reason, n in dict(dropped).items() if n), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{reason} {n}" for reason, n in ranked)


class DropLog:
    """The rows a load drops: a count per reason and, per row, its index, id, reason and a short detail."""

    def __init__(self, file_name: str, reasons: Sequence[str]) -> None:
        """Start an empty log of the file ``file_name`` whose rows may be dropped for ``reasons``."""
        self.file = file_name
        self.counts: dict[str, int] = dict.fromkeys(reasons, 0)
        self._rows: list[dict[str, Any]] = []

    def drop(self, row: int, row_id: str, reason: str, detail: str) -> None:
        """Count the row ``row`` (id ``row_id``) as dropped for ``reason`` (one of the log's reasons)."""
        if reason not in self.counts:
            raise KeyError(f"{reason!r} is not a drop reason of {self.file} ({list(self.counts)})")
        self.counts[reason] += 1
        if len(detail) > _MAX_DETAIL:
            detail = detail[: _MAX_DETAIL - 3] + "..."
        self._rows.append({"row": row, "id": row_id, "reason": reason, "detail": detail})

    @property
    def total(self) -> int:
        """The number of rows dropped so far."""
        return sum(self.counts.values())

    def summary(self) -> dict[str, Any]:
        """The keys ``dropped``, ``dropped_rows`` (in row order, at most :data:`MAX_DROPPED_ROWS`) and
        ``dropped_rows_truncated`` of a load summary.

        >>> log = DropLog("train_2.csv", (EMPTY_QUESTION, MISSING_IMAGE))
        >>> log.drop(3, "pmc-train_2-000003", MISSING_IMAGE, "image 'x.jpg' not found")
        >>> log.summary()["dropped"], log.total
        ({'empty_question': 0, 'missing_image': 1}, 1)
        """
        rows = sorted(self._rows, key=lambda r: r["row"])
        return {
            "dropped": dict(self.counts),
            "dropped_rows": rows[:MAX_DROPPED_ROWS],
            "dropped_rows_truncated": len(rows) > MAX_DROPPED_ROWS,
        }


def normalise_path(name: Any) -> str:
    r"""An image path cleaned up for lookups and comparisons: backslashes read as slashes, surrounding whitespace,
    leading ``./`` and leading slashes removed (``None`` gives ``""``).

    >>> normalise_path(" ./images\\x.png "), normalise_path("/images/x.png"), normalise_path(None)
    ('images/x.png', 'images/x.png', '')
    """
    clean = str(name or "").replace("\\", "/").strip()
    while clean.startswith("./"):
        clean = clean[2:]
    return clean.lstrip("/")


def image_key(path: str | None) -> str | None:
    """The key of one image path (see :func:`medrl_lib.data.splits.image_keys`).

    >>> image_key("images/brain002206.png"), image_key("  brain002206.png"), image_key(""), image_key(None)
    ('brain002206.png', 'brain002206.png', None, None)
    """
    base = normalise_path(path).rsplit("/", 1)[-1].strip()
    return base or None
