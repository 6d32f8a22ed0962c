r"""PMC-VQA (Zhang et al. 2023) in the common schema (:mod:`medrl_lib.data.schema`).

The data as published on the Hugging Face hub (``xmcmic/PMC-VQA``, mirror ``RadGenome/PMC-VQA``): CSV files
``train.csv``, ``test.csv`` and ``test_clean.csv`` with their images in ``images.zip``, and the v2 files
``train_2.csv`` and ``test_2.csv`` with theirs in ``images_2.zip``. The columns are
``Figure_path, Question, Answer, Choice A, Choice B, Choice C, Choice D, Answer_label``; further columns are
ignored. How :func:`load_pmc_vqa` maps a CSV row to a row of the common schema:

- ``id``: ``f"pmc-{csv stem}-{row index:06d}"``, the 0-based index of the record in the CSV (header not
  counted), so ids are stable whatever rows are dropped or selected later;
- ``question``: ``Question``, stripped;
- ``options``: ``Choice A`` .. ``Choice D`` without their letter prefix (``"A:Diffuse uptake pattern"``,
  ``" A: text"``, ``"A : text"`` all give the text after the colon). Empty choices (``""`` or the text ``nan``,
  as pandas writes a missing value) are dropped and the remaining choices are lettered anew, so a row with
  choices A, C, D non-empty has the options A, B, C;
- ``answer``: the letter of the gold choice among the kept options. The gold choice is the one named by
  ``Answer_label``; where ``Answer_label`` is missing (no such column, or an empty value) it is the one choice
  whose text equals the answer text (column ``Answer``, spelt ``Anwser`` in the old files; both spellings are
  accepted), compared without letter prefix, case and surrounding whitespace. Where both are present the
  label wins unless the answer text contradicts it (see ``label_contradicts_answer`` below);
- ``modality``: PMC-VQA has no modality column, so it is inferred by :func:`infer_modality` from the question
  text ALONE. The options are never read for it, the gold option least of all: a modality taken from the gold
  option would select and group rows on their label (a "Which imaging technique ...?" row would be filed under
  its own answer), and the options of such a question list several modalities, one of which is the answer, so
  even reading all options alike would make the group follow the answer set. So swapping which option is gold
  never changes a row's modality. A row whose question names no modality (or several) gets
  :data:`~medrl_lib.data.schema.OTHER_MODALITY` (``"other"``) and is KEPT by default: Zhu et al. draw from the
  whole of PMC-VQA, with no modality filter; the modality only groups the per-modality results. See
  ``unknown_modality`` of :func:`load_pmc_vqa` for the other settings;
- ``image``: the bytes of the file ``Figure_path``, from the image archive or an extracted image folder
  (see :class:`ImageStore` for how member names are matched);
- ``image_path``: ``Figure_path`` (cleaned of stray whitespace). PMC-VQA asks about 1.5 questions per figure,
  and ``train_2.csv`` and ``test_2.csv`` share figures: :mod:`medrl_lib.data.splits` keeps the splits disjoint
  by this column;
- ``source``: ``"pmc-vqa"``; ``facts``: ``"{}"``.

Text is normalised before it is checked (:func:`clean_text`): every run of unicode whitespace (the stray
non-breaking spaces ``\u00a0`` of the published files, thin spaces, line breaks) becomes one space,
zero-width characters are removed, and the ends are stripped; so ``"A:\u00a0Diffuse uptake"`` gives the
option ``"Diffuse uptake"`` and the label ``"B\u00a0"`` is ``"B"``. The question is only stripped.

Malformed rows are skipped, not fatal: each is dropped with the first of these reasons
(:data:`DROP_REASONS`, checked in this order) and counted:

- ``empty_question``: ``Question`` is empty (or whitespace);
- ``empty_image``: ``Figure_path`` is empty;
- ``foreign_choice_prefix``: a choice column carries another letter's prefix (``Choice B`` holding
  ``"C:text"``): the choices are shifted against the columns, so neither ``Answer_label`` nor the letters
  can be trusted, and the row is skipped;
- ``too_few_options``: fewer than 2 non-empty choices;
- ``label_not_in_choices``: ``Answer_label`` is not one of the letters of the non-empty choices (it names an
  empty or absent choice, or is not a letter A-D at all);
- ``label_contradicts_answer``: the answer text equals the text of one or more choices, none of which is the
  one ``Answer_label`` names. An answer text that equals no choice at all (a paraphrase, a longer answer)
  does not contradict the label, which is kept;
- ``no_gold``: no ``Answer_label``, and the answer text equals no choice or several;
- ``unknown_modality``: :func:`infer_modality` finds no modality in the question (only with
  ``unknown_modality="drop"``, which is not the default);
- ``missing_image``: the image file is not in the archive or folder (or is empty); found when the images are
  read, by :func:`records_to_dataset`.

The summary of a load is stored as JSON in ``info.description`` of the dataset (read it with
:func:`~medrl_lib.data.schema.load_summary`): ``file``, ``rows_read``, ``rows_kept``, ``dropped`` (every
reason of :data:`DROP_REASONS` and its count, 0 included), ``dropped_rows`` (the first
:data:`~medrl_lib.data.schema.MAX_DROPPED_ROWS` drops in row order, each ``{"row": index, "id": row id,
"reason": ..., "detail": short text}``), ``dropped_rows_truncated`` (whether there were more) and
``unknown_modality`` (the setting).
A load that drops rows warns once (:class:`UserWarning`) with the counts by reason, naming the file.

Errors are whole-file errors: :class:`~medrl_lib.data.schema.DataError` naming the file for a required column
missing from the header (the message lists the missing columns) and for a file of which no row is kept (the
message gives the drop counts); :class:`FileNotFoundError` for a missing file.

The image store, the parsed row and the dataset builder are :mod:`medrl_lib.data.records`, shared with
:mod:`medrl_lib.data.huatuo`; so are the skip-and-count machinery (:class:`~medrl_lib.data.schema.DropLog`) and
the reasons both loaders use (``empty_question``, ``empty_image``, ``missing_image``), which live in
:mod:`medrl_lib.data.schema`.
"""

from __future__ import annotations

import csv as csvlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import datasets
from huggingface_hub import hf_hub_download

from medrl_lib.data.records import (
    INVISIBLE,
    ImageStore,
    Record,
    clean_text,
    looks_like_hub_id,
    records_to_dataset,
)
from medrl_lib.data.schema import (
    EMPTY_IMAGE,
    EMPTY_QUESTION,
    MIN_OPTIONS,
    MISSING_IMAGE,
    MODALITIES,
    OTHER_MODALITY,
    DataError,
    DropLog,
    letter_of,
)

__all__ = [
    "DROP_REASONS",
    "infer_modality",
    "load_pmc_vqa",
]

HUB_ID = "xmcmic/PMC-VQA"
"""The hub dataset that holds PMC-VQA."""

SOURCE = "pmc-vqa"
"""The ``source`` column of every row."""

IMAGE_ARCHIVES: dict[str, str] = {
    "train.csv": "images.zip",
    "test.csv": "images.zip",
    "test_clean.csv": "images.zip",
    "train_2.csv": "images_2.zip",
    "test_2.csv": "images_2.zip",
}
"""The image archive of each published CSV file."""

CHOICE_COLUMNS: tuple[str, ...] = ("Choice A", "Choice B", "Choice C", "Choice D")
"""The choice columns, in letter order."""

ANSWER_TEXT_COLUMNS: tuple[str, ...] = ("Answer", "Anwser")
"""The answer-text column, in the spelling of the v2 files and in that of the old files."""

DROP_UNKNOWN = "drop"
"""The setting of ``unknown_modality`` in :func:`load_pmc_vqa` that drops the rows no modality is inferred for
(not Zhu et al.'s pool: their 10K/7K are drawn from all of PMC-VQA)."""

UNKNOWN_MODALITY = OTHER_MODALITY
"""The default of ``unknown_modality`` in :func:`load_pmc_vqa`: keep the rows no modality is inferred for, with
the modality ``"other"`` (:data:`~medrl_lib.data.schema.OTHER_MODALITY`)."""

UNKNOWN_MODALITY_SETTINGS: tuple[str, ...] = (OTHER_MODALITY, DROP_UNKNOWN, *MODALITIES)
"""The values ``unknown_modality`` of :func:`load_pmc_vqa` accepts."""

MODALITY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "MRI": (r"MRIs?", r"magnetic resonance", r"T1(?:W|WI)?", r"T2(?:W|WI)?", r"FLAIR"),
    "CT": (r"CT", r"computed tomograph\w*"),
    "X-ray": (r"x[- ]?rays?", r"radiograph\w*"),
}
"""Regular expressions of the keywords of each modality, matched case-insensitively as whole words."""

FOREIGN_CHOICE_PREFIX = "foreign_choice_prefix"
TOO_FEW_OPTIONS = "too_few_options"
LABEL_NOT_IN_CHOICES = "label_not_in_choices"
LABEL_CONTRADICTS_ANSWER = "label_contradicts_answer"
NO_GOLD = "no_gold"
UNKNOWN_MODALITY_REASON = "unknown_modality"

DROP_REASONS: tuple[str, ...] = (
    EMPTY_QUESTION,
    EMPTY_IMAGE,
    FOREIGN_CHOICE_PREFIX,
    TOO_FEW_OPTIONS,
    LABEL_NOT_IN_CHOICES,
    LABEL_CONTRADICTS_ANSWER,
    NO_GOLD,
    UNKNOWN_MODALITY_REASON,
    MISSING_IMAGE,
)
"""The reasons a PMC-VQA row is dropped for, in the order they are checked (see the module docstring)."""

_PREFIX = re.compile(r"^([A-D])\s*:\s*")

_MODALITY_PATTERNS: dict[str, re.Pattern[str]] = {
    modality: re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)
    for modality, words in MODALITY_KEYWORDS.items()
}
_EMPTY_TEXTS = frozenset({"", "nan"})


def infer_modality(text: str) -> str | None:
    """Infer the imaging modality named in ``text``, or ``None`` where it names none or several.

    The rule: the keywords of :data:`MODALITY_KEYWORDS`, matched case-insensitively as whole words, so that
    "CT" does not match inside "ACTIVE" nor "SPECT", and "T1" does not match "T12":

    - MRI: "MRI", "magnetic resonance", "T1", "T2" (also "T1W", "T1WI", "T2W", "T2WI"), "FLAIR";
    - CT: "CT" (also in "PET/CT", "CT-guided"), "computed tomography" / "computed tomographic";
    - X-ray: "X-ray" ("x ray", "xray", "X-rays"), "radiograph" ("radiography", "radiographic").

    :func:`load_pmc_vqa` applies it to the question text alone (never to the options or the gold answer).
    Text whose keywords point to more than one modality ("CT and MRI of the brain") is ambiguous and gives
    ``None``, as does text without any keyword. Known limit: "T1"/"T2" also name thoracic vertebrae, so
    "the T1 vertebra on CT" is ambiguous and "a fracture of T2" is taken for MRI.

    >>> infer_modality("Axial T2-weighted image of the brain"), infer_modality("contrast-enhanced CT scan")
    ('MRI', 'CT')
    >>> infer_modality("What does the chest radiograph show?"), infer_modality("ACTIVE infection")
    ('X-ray', None)
    >>> print(infer_modality("CT and MRI of the brain"))
    None
    """
    found = [modality for modality, pattern in _MODALITY_PATTERNS.items() if pattern.search(text)]
    return found[0] if len(found) == 1 else None


def image_archive_name(csv_name: str) -> str:
    """Return the name of the image archive of the CSV file ``csv_name`` (a file name, not a path).

    The published files are looked up in :data:`IMAGE_ARCHIVES`; any other name whose stem ends in ``_2``
    goes with ``images_2.zip``, and the rest with ``images.zip``.

    >>> image_archive_name("train_2.csv"), image_archive_name("test_clean.csv"), image_archive_name("mine_2.csv")
    ('images_2.zip', 'images.zip', 'images_2.zip')
    """
    if csv_name in IMAGE_ARCHIVES:
        return IMAGE_ARCHIVES[csv_name]
    return "images_2.zip" if Path(csv_name).stem.endswith("_2") else "images.zip"


def strip_choice_prefix(text: str) -> str:
    """Strip surrounding whitespace and a leading choice-letter prefix (``A`` to ``D`` and a colon).

    >>> strip_choice_prefix("A:Diffuse uptake pattern"), strip_choice_prefix(" B: Focal lesion ")
    ('Diffuse uptake pattern', 'Focal lesion')
    >>> strip_choice_prefix("C : x"), strip_choice_prefix("A:")
    ('x', '')
    >>> strip_choice_prefix("T1: hyperintense"), strip_choice_prefix("E:text")
    ('T1: hyperintense', 'E:text')
    """
    text = text.strip()
    prefix = _PREFIX.match(text)
    return text[prefix.end() :].strip() if prefix else text


def load_pmc_vqa(
    source: str = HUB_ID,
    *,
    csv: str = "train_2.csv",
    images: str | None = None,
    limit: int | None = None,
    unknown_modality: str = UNKNOWN_MODALITY,
) -> datasets.Dataset:
    """Load one PMC-VQA CSV file and its images as a dataset with :data:`~medrl_lib.data.schema.FEATURES`.

    ``source`` is one of:

    - a local path to the CSV file itself (``csv`` is then ignored);
    - a local folder holding the CSV file ``csv`` and its images: the archive :func:`image_archive_name`
      names, or else a folder of that archive's stem (``images_2/``), ``images/`` or ``figures/``, or else the
      folder itself;
    - a hub dataset id (default ``xmcmic/PMC-VQA``): ``csv`` and its image archive are downloaded with
      :func:`huggingface_hub.hf_hub_download` (into the hub cache; offline, from the cache).

    A local path wins over a hub id of the same spelling. ``images`` (a zip archive or a folder) replaces the
    images found from ``source``. ``limit`` reads only the first ``limit`` rows of the CSV (before any row is
    dropped).

    The modality of a row is inferred from its question text only (:func:`infer_modality`; never from the
    options or the label, see the module docstring). ``unknown_modality`` says what happens to a row whose
    question names no modality (or several): ``"other"`` (the default) keeps it with the modality
    ``"other"``, as Zhu et al. draw from the whole of PMC-VQA (most of whose figures are not MRI, CT or X-ray);
    ``"drop"`` drops it, counted as ``dropped["unknown_modality"]`` in the :class:`UserWarning` and in the JSON
    summary in ``info.description`` of the result (a pool that is not Zhu's); a modality name (``"MRI"``,
    ``"CT"``, ``"X-ray"``) keeps it with that modality. The image of a dropped row is neither looked up nor
    read.
    """
    if unknown_modality not in UNKNOWN_MODALITY_SETTINGS:
        raise ValueError(f"unknown_modality must be one of {UNKNOWN_MODALITY_SETTINGS}, got {unknown_modality!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    csv_path, image_location = _resolve(source, csv, images)
    drops = DropLog(csv_path.name, DROP_REASONS)
    records, n_read = _parse_csv(csv_path, limit, unknown_modality, drops)
    summary = {"file": csv_path.name, "rows_read": n_read, "unknown_modality": unknown_modality}
    with ImageStore(image_location) as store:
        return records_to_dataset(records, store, drops, summary)


def _resolve(source: str, csv_name: str, images: str | None) -> tuple[Path, Path | None]:
    """Return the CSV file and the image archive or folder named by ``source``, ``csv_name`` and ``images``."""
    path = Path(source)
    if path.is_file():
        return path, Path(images) if images is not None else _local_images(path.parent, path.name)
    if path.is_dir():
        csv_path = path / csv_name
        if not csv_path.is_file():
            raise FileNotFoundError(f"{str(csv_path)!r}: no CSV file {csv_name!r} in the folder {source!r}")
        return csv_path, Path(images) if images is not None else _local_images(path, csv_name)
    if not looks_like_hub_id(source):
        raise FileNotFoundError(f"{source!r} is neither a local CSV file or folder nor a hub id 'owner/name'")
    csv_path = Path(hf_hub_download(repo_id=source, filename=csv_name, repo_type="dataset"))
    if images is not None:
        return csv_path, Path(images)
    archive = hf_hub_download(repo_id=source, filename=image_archive_name(csv_name), repo_type="dataset")
    return csv_path, Path(archive)


def _local_images(folder: Path, csv_name: str) -> Path:
    """The image archive or folder beside a local CSV file (see :func:`load_pmc_vqa`)."""
    archive = image_archive_name(csv_name)
    for candidate in (folder / archive, folder / Path(archive).stem, folder / "images", folder / "figures"):
        if candidate.exists():
            return candidate
    return folder


def _parse_csv(path: Path, limit: int | None, unknown_modality: str, drops: DropLog) -> tuple[list[Record], int]:
    """Parse the rows of a PMC-VQA CSV file; return the kept records and the number of rows read.

    Malformed rows are dropped into ``drops`` (see the module docstring for the reasons and their order).
    """
    name = path.name
    stem = path.stem
    records: list[Record] = []
    n_read = 0
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csvlib.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        col = {h: i for i, h in reversed(list(enumerate(header)))}  # the first column of each name
        missing = [c for c in ("Figure_path", "Question", *CHOICE_COLUMNS) if c not in col]
        text_col = next((c for c in ANSWER_TEXT_COLUMNS if c in col), None)
        if "Answer_label" not in col and text_col is None:
            missing.append("Answer_label (or Answer/Anwser)")
        if missing:
            raise DataError(f"{name}: missing column(s) {missing}; the header is {header}")
        for index, values in enumerate(_limited(reader, limit)):
            n_read += 1

            def get(column: str | None) -> str:
                i = col.get(column) if column is not None else None
                return values[i] if i is not None and i < len(values) else ""

            row_id = f"pmc-{stem}-{index:06d}"
            parsed = _parse_row(get, text_col, unknown_modality)
            if isinstance(parsed, _Drop):
                drops.drop(index, row_id, parsed.reason, parsed.detail)
                continue
            question, options, gold, modality, figure = parsed
            records.append(Record(row_id, index, question, options, letter_of(gold), modality, SOURCE, figure))
    return records, n_read


class _Drop(NamedTuple):
    """Why a row is dropped: one of :data:`DROP_REASONS`, and a short text naming the field and value."""

    reason: str
    detail: str


def _parse_row(
    get: Callable[[str | None], str], text_col: str | None, unknown_modality: str
) -> _Drop | tuple[str, list[str], int, str, str]:
    """Check one CSV row: ``(question, options, gold index, modality, figure)``, or why it is dropped."""
    question = get("Question").strip()
    if not question:
        return _Drop(EMPTY_QUESTION, "column Question is empty")
    figure = get("Figure_path").translate(INVISIBLE).strip()
    if not figure:
        return _Drop(EMPTY_IMAGE, "column Figure_path is empty")
    letters, options = [], []
    for column in CHOICE_COLUMNS:
        letter = column[-1]
        text = clean_text(get(column))
        prefix = _PREFIX.match(text)
        if prefix and prefix.group(1) != letter:
            return _Drop(FOREIGN_CHOICE_PREFIX, f"column {column!r} holds {text!r}, the prefix of {prefix.group(1)}")
        text = text[prefix.end() :] if prefix else text
        if text.lower() not in _EMPTY_TEXTS:
            letters.append(letter)
            options.append(text)
    if len(options) < MIN_OPTIONS:
        return _Drop(TOO_FEW_OPTIONS, f"{len(options)} non-empty choice(s) ({''.join(letters) or 'none'})")
    gold = _gold_index(clean_text(get("Answer_label")), clean_text(get(text_col)), letters, options)
    if isinstance(gold, _Drop):
        return gold
    modality = infer_modality(question)  # the question alone: never the options, never the label
    if modality is None:
        if unknown_modality == DROP_UNKNOWN:
            return _Drop(UNKNOWN_MODALITY_REASON, "no modality keyword (or several) in the question")
        modality = unknown_modality
    return question, options, gold, modality, figure


def _limited(rows: Iterable[list[str]], limit: int | None) -> Iterator[list[str]]:
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            return
        yield row


def _gold_index(label: str, answer_text: str, letters: list[str], options: list[str]) -> int | _Drop:
    """The index among ``options`` of the gold choice named by ``label`` or, without one, by ``answer_text``;
    or why there is none (``label`` and ``answer_text`` are cleaned already; see ``label_contradicts_answer``
    in the module docstring for the rule where both are present)."""
    wanted = _normalise(strip_choice_prefix(answer_text))
    matches = [i for i, text in enumerate(options) if _normalise(text) == wanted] if wanted else []
    if label:
        if label not in letters:
            return _Drop(LABEL_NOT_IN_CHOICES, f"Answer_label {label!r}; the non-empty choices are {''.join(letters)}")
        gold = letters.index(label)
        if matches and gold not in matches:
            named = "".join(letters[i] for i in matches)
            return _Drop(
                LABEL_CONTRADICTS_ANSWER,
                f"Answer_label {label!r} is {options[gold]!r}, but the answer text {answer_text!r} is choice {named}",
            )
        return gold
    if len(matches) != 1:
        return _Drop(NO_GOLD, f"no Answer_label, and the answer text {answer_text!r} equals {len(matches)} choices")
    return matches[0]


def _normalise(text: str) -> str:
    return " ".join(text.split()).casefold()
