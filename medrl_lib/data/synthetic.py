"""Seeded synthetic radiology VQA items in the common schema (:mod:`medrl_lib.data.schema`).

Each item is a small grayscale image (stored as an RGB PNG) in one of three visibly different
styles, with 1 to 3 round lesions, and a multiple-choice question whose answer is determined by the
image:

- MRI: dark background, an elliptical head with a bright rim and a mid-gray, softly textured
  brain; lesions are BRIGHT (hyperintense).
- CT: a circular body cross-section on a black background, a bright bone ring near its edge and a
  soft-tissue gray interior; lesions are DARK (hypodense).
- X-ray: a bright chest with two dark lung fields and a bright spine band in the middle; lesions
  are BRIGHT opacities inside the lung fields.

Geometry. Coordinates are fractions of the image width and height, ``x`` to the right and ``y``
downwards. "Left" and "right" are the IMAGE's left and right (``x < 0.5`` is left), not the
patient's (radiological convention would swap them). Each lesion lies in its own quadrant, with a
margin from both midlines and from the edge of its anatomical region, so lesions never overlap and
never straddle a quadrant boundary. Radii are in ``[0.04, 0.05]`` (small) or ``[0.08, 0.09]``
(large), so the size class is never borderline.

Questions (the option pools are listed in :data:`OPTION_POOLS`):

- ``location``: "Where is the lesion located in this {modality} image?" (one lesion drawn);
- ``count``: "How many lesions are visible in this {modality} image?" (1 to 3 lesions);
- ``side``: "On which side of the image is the lesion?" (one lesion);
- ``modality``: "Which imaging modality was used to acquire this image?" (1 to 3 lesions);
- ``size``: "Is the lesion small or large?" (one lesion).

The ground truth of each item is kept as JSON in its ``facts`` column, e.g.
``{"modality": "CT", "question_type": "count", "n_lesions": 2, "lesions": [{"center": [0.31, 0.28],
"radius": 0.045, "quadrant": "upper left", "side": "left", "size": "small"}, ...]}``; lesions are
listed in quadrant order (upper left, upper right, lower left, lower right).

Everything random comes from one ``numpy`` Generator seeded by ``(seed, crc32(id_prefix))``: the
same configuration gives byte-identical datasets, and two splits that differ in seed or in id
prefix share neither ids nor content.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
from PIL import Image

from medrl_lib.data.schema import FEATURES, LETTERS, MIN_OPTIONS, MODALITIES, index_of, letter_of

QUADRANTS: tuple[str, ...] = ("upper left", "upper right", "lower left", "lower right")
"""Quadrant names, in the order lesions are listed; quadrant ``q`` is left if ``q`` is even, upper if ``q < 2``."""

NUMBER_WORDS: tuple[str, ...] = ("none", "one", "two", "three", "four", "five")
"""``NUMBER_WORDS[n]`` spells the count ``n``."""

QUESTIONS: dict[str, str] = {
    "location": "Where is the lesion located in this {modality} image?",
    "count": "How many lesions are visible in this {modality} image?",
    "side": "On which side of the image is the lesion?",
    "modality": "Which imaging modality was used to acquire this image?",
    "size": "Is the lesion small or large?",
}
"""Question template of each question type."""

OPTION_POOLS: dict[str, tuple[str, ...]] = {
    "location": (*QUADRANTS, "no lesion is visible", "both sides"),
    "count": ("one", "two", "three", "four", "five", "none"),
    "side": ("left", "right", "both sides", "midline", "none"),
    "modality": ("MRI", "CT", "X-ray", "ultrasound", "PET", "mammography"),
    "size": ("small", "large", "no lesion", "cannot be determined"),
}
"""All option texts of each question type: the answer and the distractors are drawn from it."""

OPTION_ORDERS: tuple[str, ...] = ("shuffled", "canonical")
"""How the options of an item are ordered (:attr:`SyntheticConfig.option_order`)."""

LESION_ADJECTIVE: dict[str, str] = {"MRI": "hyperintense", "CT": "hypodense", "X-ray": "opaque"}
"""How a lesion looks in each modality, as :func:`describe` words it."""

_SMALL_RADIUS = (0.04, 0.05)
_LARGE_RADIUS = (0.08, 0.09)
_MARGIN = 0.045  # clearance of a lesion from the midlines and from the edge of its region
_ANGLES = np.linspace(0, 2 * np.pi, 24, endpoint=False)
_BOUNDARY = np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], axis=1)  # unit circle, checked for lesion clearance
_REACH = 0.47  # no lesion region reaches farther than this from the image centre, along either axis
_CANDIDATES = 64  # lesion centres tried at once when placing a lesion
_TRIES = 50  # rounds of candidates before giving up (the worst case accepts about 1% of candidates)


@dataclass
class SyntheticConfig:
    """Settings of :func:`generate`."""

    n_items: int
    """number of items to generate"""
    modalities: tuple[str, ...] = ("MRI",)
    """imaging modalities; the items are split evenly over them, in contiguous blocks"""
    image_size: int = 56
    """image width and height in pixels; a multiple of 28 (the Qwen2-VL merged patch size)"""
    min_options: int = 2
    """fewest options per question"""
    max_options: int = 6
    """most options per question (capped by the option pool of the question type)"""
    question_types: tuple[str, ...] = ("location", "count", "side", "modality", "size")
    """question types, assigned round-robin over the items"""
    option_order: str = "shuffled"
    """'shuffled': options in random order (the gold letter is uniform); 'canonical': the drawn options listed in
    the order of their pool (:data:`OPTION_POOLS`), so that 'small' always comes before 'large'"""
    seed: int = 0
    """seed of the random generator (mixed with ``id_prefix``)"""
    id_prefix: str = "syn"
    """prefix of the item ids ``f"{id_prefix}-{seed}-{index:06d}"``"""

    def __post_init__(self) -> None:
        """Normalise sequences to tuples and check every field."""
        self.modalities = tuple(self.modalities)
        self.question_types = tuple(self.question_types)
        if self.n_items < 1:
            raise ValueError(f"n_items must be at least 1, got {self.n_items}")
        if not self.modalities or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must be non-empty and without repeats, got {self.modalities}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"modalities: unknown modality {unknown}, expected some of {MODALITIES}")
        if self.image_size < 28 or self.image_size % 28:
            raise ValueError(f"image_size must be a positive multiple of 28, got {self.image_size}")
        if not MIN_OPTIONS <= self.min_options <= self.max_options <= len(LETTERS):
            raise ValueError(
                f"min_options and max_options must satisfy {MIN_OPTIONS} <= min_options <= max_options"
                f" <= {len(LETTERS)}, got min_options={self.min_options}, max_options={self.max_options}"
            )
        if not self.question_types or len(set(self.question_types)) != len(self.question_types):
            raise ValueError(f"question_types must be non-empty and without repeats, got {self.question_types}")
        for qtype in self.question_types:
            if qtype not in QUESTIONS:
                raise ValueError(
                    f"question_types: unknown question type {qtype!r}, expected some of {tuple(QUESTIONS)}"
                )
            if len(OPTION_POOLS[qtype]) < self.min_options:
                raise ValueError(
                    f"min_options={self.min_options} exceeds the {len(OPTION_POOLS[qtype])} distinct options"
                    f" of question type {qtype!r}"
                )
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.option_order not in OPTION_ORDERS:
            raise ValueError(f"option_order must be one of {OPTION_ORDERS}, got {self.option_order!r}")
        if not self.id_prefix:
            raise ValueError("id_prefix must be a non-empty string")


def generate(cfg: SyntheticConfig) -> datasets.Dataset:
    """Generate ``cfg.n_items`` items as a dataset with :data:`~medrl_lib.data.schema.FEATURES` (every item has an
    image of its own, ``image_path`` ``"<id>.png"``)."""
    rng = np.random.default_rng([cfg.seed, zlib.crc32(cfg.id_prefix.encode())])
    centres = (np.arange(cfg.image_size) + 0.5) / cfg.image_size
    xx, yy = np.meshgrid(centres, centres)
    columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
    for index in range(cfg.n_items):
        modality = cfg.modalities[index * len(cfg.modalities) // cfg.n_items]
        qtype = cfg.question_types[index % len(cfg.question_types)]
        geometry = _anatomy(modality, rng)
        n_lesions = int(rng.integers(1, 4)) if qtype in ("count", "modality") else 1
        lesions = _place_lesions(modality, geometry, n_lesions, rng)
        facts = {"modality": modality, "question_type": qtype, "n_lesions": n_lesions, "lesions": lesions}
        options, answer = _options(qtype, _answer_text(facts), cfg, rng)
        pixels = _render(modality, geometry, lesions, xx, yy, rng)
        row_id = f"{cfg.id_prefix}-{cfg.seed}-{index:06d}"
        columns["id"].append(row_id)
        columns["image"].append({"bytes": _png(pixels), "path": None})
        columns["question"].append(QUESTIONS[qtype].format(modality=modality))
        columns["options"].append(options)
        columns["answer"].append(answer)
        columns["modality"].append(modality)
        columns["source"].append("synthetic")
        columns["facts"].append(json.dumps(facts))
        columns["image_path"].append(f"{row_id}.png")  # one image per item, named after it
    return datasets.Dataset.from_dict(columns, features=FEATURES)


def make_split(
    n_per_modality: int,
    modalities: Sequence[str],
    seed: int,
    image_size: int = 56,
    id_prefix: str = "syn",
) -> datasets.Dataset:
    """Generate ``n_per_modality`` items of each of ``modalities`` with all question types."""
    return generate(
        SyntheticConfig(
            n_items=n_per_modality * len(modalities),
            modalities=tuple(modalities),
            image_size=image_size,
            seed=seed,
            id_prefix=id_prefix,
        )
    )


def describe(facts: Mapping[str, Any]) -> str:
    """Describe an image from its synthetic ``facts`` in one report-like sentence.

    >>> describe({"modality": "MRI", "n_lesions": 2, "lesions": [
    ...     {"quadrant": "upper left", "size": "small"}, {"quadrant": "lower right", "size": "large"}]})
    'MRI image showing two hyperintense lesions: a small lesion in the upper left and a large lesion in the lower right.'
    """
    lesions = facts["lesions"]
    parts = [f"a {lesion['size']} lesion in the {lesion['quadrant']}" for lesion in lesions]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    noun = "lesion" if len(lesions) == 1 else "lesions"
    adjective = LESION_ADJECTIVE[facts["modality"]]
    return f"{facts['modality']} image showing {NUMBER_WORDS[len(lesions)]} {adjective} {noun}: {listed}."


def answer_text(row: Mapping[str, Any]) -> str:
    """Return the text of the gold option of ``row`` (a row of the common schema).

    >>> answer_text({"options": ["left", "right"], "answer": "B"})
    'right'
    """
    return row["options"][index_of(row["answer"])]


def _answer_text(facts: Mapping[str, Any]) -> str:
    """Return the correct option text of the question type named in ``facts``."""
    qtype, first = facts["question_type"], facts["lesions"][0]
    if qtype == "location":
        return first["quadrant"]
    if qtype == "count":
        return NUMBER_WORDS[facts["n_lesions"]]
    if qtype == "side":
        return first["side"]
    if qtype == "modality":
        return facts["modality"]
    return first["size"]


def _options(qtype: str, answer: str, cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[list[str], str]:
    """Draw the option list (size uniform in the allowed range) and the gold letter for ``answer``."""
    pool = [text for text in OPTION_POOLS[qtype] if text != answer]
    n = int(rng.integers(cfg.min_options, min(cfg.max_options, len(pool) + 1) + 1))
    options = [pool[i] for i in rng.permutation(len(pool))[: n - 1]]
    position = int(rng.integers(n))  # drawn in both orders, so that both give the same distractors
    options.insert(position, answer)
    if cfg.option_order == "canonical":
        options.sort(key=OPTION_POOLS[qtype].index)
        position = options.index(answer)
    return options, letter_of(position)


def _anatomy(modality: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the jittered anatomy of one image: the shapes and the gray levels of its style."""
    shift = rng.uniform(-0.015, 0.015, size=2)
    if modality == "MRI":
        axes = np.array([rng.uniform(0.40, 0.43), rng.uniform(0.44, 0.47)])
        rim = rng.uniform(0.035, 0.045)
        return {"centre": 0.5 + shift, "axes": axes, "rim": rim, "levels": rng.uniform(-12, 12, size=4)}
    if modality == "CT":
        radius = rng.uniform(0.44, 0.47)
        return {"centre": 0.5 + shift, "radius": radius, "levels": rng.uniform(-12, 12, size=4)}
    offset = rng.uniform(0.26, 0.27)
    lung_y = 0.5 + rng.uniform(-0.02, 0.02)
    lungs = [np.array([0.5 - offset, lung_y]), np.array([0.5 + offset, lung_y])]
    axes = np.array([rng.uniform(0.18, 0.20), rng.uniform(0.36, 0.39)])
    return {"lungs": lungs, "axes": axes, "levels": rng.uniform(-12, 12, size=4)}


def _lesion_region(modality: str, geometry: Mapping[str, Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the ellipses ``(centre, semi-axes)`` inside which a lesion may lie."""
    if modality == "MRI":
        return [(geometry["centre"], geometry["axes"] - geometry["rim"])]
    if modality == "CT":
        return [(geometry["centre"], np.full(2, geometry["radius"] - 0.075))]
    return [(centre, geometry["axes"]) for centre in geometry["lungs"]]


def _place_lesions(
    modality: str, geometry: Mapping[str, Any], n_lesions: int, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Place ``n_lesions`` lesions in distinct quadrants, clear of the midlines and inside the anatomy."""
    region = _lesion_region(modality, geometry)
    lesions = []
    for quadrant in sorted(rng.choice(len(QUADRANTS), size=n_lesions, replace=False).tolist()):
        large = bool(rng.integers(2))
        radius = round(float(rng.uniform(*(_LARGE_RADIUS if large else _SMALL_RADIUS))), 4)
        signs = np.array([1.0 if quadrant % 2 else -1.0, 1.0 if quadrant >= 2 else -1.0])
        clearance = radius + _MARGIN
        for _ in range(_TRIES):
            centres = 0.5 + signs * rng.uniform(clearance, _REACH - clearance, size=(_CANDIDATES, 2))
            points = centres[:, None, :] + clearance * _BOUNDARY[None, :, :]
            inside = np.zeros(points.shape[:2], dtype=bool)
            for centre, axes in region:
                inside |= (((points - centre) / axes) ** 2).sum(axis=-1) <= 1.0
            ok = np.flatnonzero(inside.all(axis=1))
            if ok.size:
                break
        else:
            raise RuntimeError(f"could not place a lesion in the {QUADRANTS[quadrant]} of a {modality} image")
        x, y = (round(float(v), 4) for v in centres[ok[0]])
        lesions.append(
            {
                "center": [x, y],
                "radius": radius,
                "quadrant": QUADRANTS[quadrant],
                "side": "left" if quadrant % 2 == 0 else "right",
                "size": "large" if large else "small",
            }
        )
    return lesions


def _ellipse(xx: np.ndarray, yy: np.ndarray, centre: np.ndarray, axes: np.ndarray, size: int) -> np.ndarray:
    """Return the anti-aliased coverage (0..1) of an ellipse on the pixel grid."""
    rho = np.sqrt(((xx - centre[0]) / axes[0]) ** 2 + ((yy - centre[1]) / axes[1]) ** 2)
    return np.clip((1.0 - rho) * axes.min() * size / 1.5 + 0.5, 0.0, 1.0)


def _texture(xx: np.ndarray, yy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a smooth random texture in [-1, 1]: the mean of three low-frequency plane waves."""
    freq = rng.uniform(1.0, 4.0, size=(3, 2)) * rng.choice([-1.0, 1.0], size=(3, 2))
    phase = rng.uniform(0, 2 * np.pi, size=3)
    x = 2 * np.pi * freq[:, 0, None] * xx[0]
    y = 2 * np.pi * freq[:, 1, None] * yy[:, 0] + phase[:, None]
    # sin(x + y) = sin(x) cos(y) + cos(x) sin(y), summed over the waves as two matrix products
    return (np.cos(y).T @ np.sin(x) + np.sin(y).T @ np.cos(x)) / 3.0


def _render(
    modality: str,
    geometry: Mapping[str, Any],
    lesions: Sequence[Mapping[str, Any]],
    xx: np.ndarray,
    yy: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render one grayscale image (uint8, ``size × size``) in the style of ``modality``."""
    size = xx.shape[0]
    jitter = geometry["levels"]

    def paint(image: np.ndarray, coverage: np.ndarray, value: float | np.ndarray) -> np.ndarray:
        return image + coverage * (value - image)

    if modality == "MRI":
        centre, axes = geometry["centre"], geometry["axes"]
        image = np.full(xx.shape, 10.0 + jitter[0] / 3)
        image = paint(image, _ellipse(xx, yy, centre, axes, size), 185.0 + jitter[1])
        brain = 105.0 + jitter[2] + 14.0 * _texture(xx, yy, rng)
        image = paint(image, _ellipse(xx, yy, centre, axes - geometry["rim"], size), brain)
        lesion_level, noise = 220.0 + jitter[3], 4.0
    elif modality == "CT":
        centre, radius = geometry["centre"], geometry["radius"]
        image = np.zeros(xx.shape)
        image = paint(image, _ellipse(xx, yy, centre, np.full(2, radius), size), 110.0 + jitter[0])
        image = paint(image, _ellipse(xx, yy, centre, np.full(2, radius - 0.035), size), 235.0 + jitter[1] / 2)
        tissue = 130.0 + jitter[2] + 6.0 * _texture(xx, yy, rng)
        image = paint(image, _ellipse(xx, yy, centre, np.full(2, radius - 0.075), size), tissue)
        lesion_level, noise = 50.0 + jitter[3], 7.0
    else:
        image = np.full(xx.shape, 190.0 + jitter[0])
        image = paint(image, _ellipse(xx, yy, np.array([0.5, 0.5]), np.array([0.47, 0.49]), size), 215.0)
        lung = 70.0 + jitter[1] + 10.0 * _texture(xx, yy, rng)
        for centre in geometry["lungs"]:
            image = paint(image, _ellipse(xx, yy, centre, geometry["axes"], size), lung)
        spine = np.clip((0.035 - np.abs(xx - 0.5)) * size + 0.5, 0.0, 1.0)
        image = paint(image, spine, 240.0 + jitter[2] / 2)
        lesion_level, noise = 185.0 + jitter[3], 5.0
    for lesion in lesions:
        centre = np.array(lesion["center"])
        image = paint(image, _ellipse(xx, yy, centre, np.full(2, lesion["radius"]), size), lesion_level)
    image += rng.normal(0.0, noise, size=xx.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    """Encode a grayscale uint8 array as an RGB PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def reasoning_target(row: dict) -> str:
    """The supervised reasoning target (synthetic items): the image's report, the finding that answers the
    question, then the letter. A documented choice: the chain states the answer's text before its letter, so the
    letter is read off the options rather than guessed.

    >>> row = {"facts": '{"modality": "CT", "question_type": "side", "n_lesions": 1, "lesions": [{"center": [0.3, 0.3], '
    ...        '"radius": 0.05, "quadrant": "upper left", "side": "left", "size": "small"}]}',
    ...        "options": ["right", "left"], "answer": "B"}
    >>> reasoning_target(row)
    '<think>CT image showing one hypodense lesion: a small lesion in the upper left. The answer is left.</think><answer>B</answer>'
    """
    answer_text = row["options"][ord(row["answer"]) - 65]
    report = describe(json.loads(row["facts"]))
    return f"<think>{report} The answer is {answer_text}.</think><answer>{row['answer']}</answer>"
