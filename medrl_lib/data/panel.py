"""The transfer panel: benchmarks beyond a run's home test, each row with its ``benchmark``.

Two sources (``panel.source`` of the profile, :class:`medrl_lib.config.PanelSettings`):

- ``huatuo-eval``: every benchmark of the HuatuoGPT-Vision evaluation data (VQA-RAD, SLAKE, PathVQA, OmniMedVQA,
  MMMU, ... as its ``dataset`` field spells them), closed-form items only
  (:func:`medrl_lib.data.huatuo.load_huatuo_panel`);
- ``synthetic``: a panel the package generates (:data:`SYNTHETIC_BENCHMARKS`), on the same three imaging styles as
  the training items but with other question styles and image statistics, so that the miniature has a transfer
  test of its own. It stands in for no real benchmark and the book labels it as synthetic.

:func:`draw_panel` caps each benchmark at ``per_benchmark`` items drawn with a fixed seed (the ids are stored with
every panel score); :func:`panel_items` builds the profile's panel. A panel name the source lacks is a
:class:`~medrl_lib.data.schema.DataError` naming it and the benchmarks there are.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import datasets
import numpy as np
from PIL import Image

from medrl_lib.data.schema import FEATURES, MODALITIES, DataError, letter_of
from medrl_lib.data.synthetic import QUADRANTS, SyntheticConfig, generate

if TYPE_CHECKING:
    from medrl_lib.config import Profile

__all__ = ["PANEL_FEATURES", "SYNTHETIC_BENCHMARKS", "draw_panel", "panel_items", "synthetic_panel"]

PANEL_FEATURES = datasets.Features({**FEATURES, "benchmark": datasets.Value("string")})
"""The features of a panel: the common schema and the row's ``benchmark``."""

SYNTHETIC_BENCHMARKS: dict[str, str] = {
    "synthetic-yes-no": "closed yes/no questions about one quadrant ('Is there a lesion in the upper left of this CT "
                        "image?'), options 'yes' and 'no', as VQA-RAD and SLAKE ask them",
    "synthetic-reworded": "the training question types worded otherwise ('In which quadrant of the scan does the "
                          "abnormality lie?'), options in shuffled order",
    "synthetic-low-contrast": "the training questions on images of half the contrast with Gaussian noise "
                              "(standard deviation 8% of the gray range): other image statistics",
}
"""The synthetic panel's benchmarks and what each changes against the training items."""

REWORDED: dict[str, str] = {
    "location": "In which quadrant of the scan does the abnormality lie?",
    "count": "What is the number of abnormal foci in this scan?",
    "side": "Which half of the image contains the abnormality?",
    "modality": "What kind of scan is this?",
    "size": "How would you describe the size of the abnormality?",
}
"""The reworded question of each question type (``synthetic-reworded``)."""

_NOISE = 0.08  # standard deviation of the low-contrast benchmark's noise, as a share of the gray range


def synthetic_panel(benchmarks: Sequence[str], per_benchmark: int, *, image_size: int = 56,
                    seed: int = 0) -> datasets.Dataset:
    """``per_benchmark`` items of each of ``benchmarks`` (names of :data:`SYNTHETIC_BENCHMARKS`) over MRI, CT and
    X-ray, with :data:`PANEL_FEATURES`; deterministic in ``seed``, ids ``panel-<benchmark>-<seed>-<index>``, never
    equal to a training item's (another id prefix: other random draws).

    >>> ds = synthetic_panel(["synthetic-yes-no"], 3, seed=1)
    >>> list(ds["options"]), ds["benchmark"][0]
    ([['yes', 'no'], ['yes', 'no'], ['yes', 'no']], 'synthetic-yes-no')
    """
    unknown = [b for b in benchmarks if b not in SYNTHETIC_BENCHMARKS]
    if unknown:
        raise DataError(f"panel.benchmarks: {unknown[0]!r} is not a synthetic benchmark (known: "
                        f"{', '.join(SYNTHETIC_BENCHMARKS)})")
    parts = []
    for name in benchmarks:
        base = generate(SyntheticConfig(n_items=per_benchmark, modalities=MODALITIES, image_size=image_size,
                                        seed=seed, id_prefix=f"panel-{name}",
                                        question_types=("location",) if name == "synthetic-yes-no" else
                                        ("location", "count", "side", "modality", "size")))
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        rows = [_transform(name, row, rng) for row in base]
        parts.append(datasets.Dataset.from_list(rows, features=PANEL_FEATURES))
    return datasets.concatenate_datasets(parts)


def _transform(name: str, row: dict, rng: np.random.Generator) -> dict:
    """``row`` (a synthetic item) as an item of the benchmark ``name``."""
    facts = json.loads(row["facts"])
    row = {**row, "benchmark": name, "image": {"bytes": _png_bytes(row["image"]), "path": None}}
    if name == "synthetic-yes-no":
        lesion = facts["lesions"][0]["quadrant"]
        asked = lesion if rng.random() < 0.5 else str(rng.choice([q for q in QUADRANTS if q != lesion]))
        facts.update(question_type="yes-no", asked_quadrant=asked)
        row.update(question=f"Is there a lesion in the {asked} of this {facts['modality']} image?",
                   options=["yes", "no"], answer="A" if asked == lesion else "B")
    elif name == "synthetic-reworded":
        gold = row["options"][ord(row["answer"]) - 65]
        options = [row["options"][i] for i in rng.permutation(len(row["options"]))]
        row.update(question=REWORDED[facts["question_type"]], options=options,
                   answer=letter_of(options.index(gold)))
    else:  # synthetic-low-contrast
        pixels = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("L"), dtype=np.float64) / 255
        pixels = pixels.mean() + 0.5 * (pixels - pixels.mean()) + rng.normal(0, _NOISE, pixels.shape)
        gray = Image.fromarray(np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8), "L").convert("RGB")
        buffer = io.BytesIO()
        gray.save(buffer, format="PNG")
        row["image"] = {"bytes": buffer.getvalue(), "path": None}
    row["facts"] = json.dumps(facts)
    return row


def _png_bytes(image) -> bytes:
    """The PNG bytes of a decoded image or of a ``{"bytes": ...}`` mapping."""
    if isinstance(image, dict):
        return image["bytes"]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def draw_panel(ds: datasets.Dataset, benchmarks: Sequence[str], per_benchmark: int, seed: int = 0) -> datasets.Dataset:
    """The rows of each of ``benchmarks`` (in that order), at most ``per_benchmark`` of each, drawn without
    replacement with a generator seeded by ``(seed, crc32(benchmark))`` and kept in file order; a benchmark with
    fewer rows is kept whole. A benchmark ``ds`` lacks raises :class:`DataError` naming those it has.

    >>> ds = datasets.Dataset.from_dict({"benchmark": ["A", "A", "A", "B"], "id": ["a0", "a1", "a2", "b0"]})
    >>> list(draw_panel(ds, ["B", "A"], 2)["id"])
    ['b0', 'a0', 'a1']
    """
    names = list(ds["benchmark"])
    present = sorted(set(names))
    missing = [b for b in benchmarks if b not in present]
    if missing:
        raise DataError(f"panel.benchmarks: {missing[0]!r} has no closed-form item in the panel's source "
                        f"(benchmarks there: {', '.join(present) or 'none'})")
    chosen: list[int] = []
    for name in benchmarks:
        rows = [i for i, b in enumerate(names) if b == name]
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if len(rows) > per_benchmark:
            rows = sorted(rng.choice(rows, size=per_benchmark, replace=False).tolist())
        chosen += rows
    return ds.select(chosen)


def panel_items(profile: Profile) -> datasets.Dataset:
    """The profile's panel (``panel`` settings): its source's benchmarks named in ``panel.benchmarks``, each capped
    at ``panel.per_benchmark`` items (:func:`draw_panel`), images resized as the stored splits' are."""
    from medrl_lib.data.sources import resolve_data_source
    from medrl_lib.data.huatuo import HUB_ID, load_huatuo_panel
    from medrl_lib.data.splits import resize_images

    s = profile.panel
    if not s.benchmarks:
        raise ValueError(f"profile {profile.name!r} names no panel (panel.benchmarks is empty)")
    if s.source == "synthetic":
        return synthetic_panel(s.benchmarks, s.per_benchmark, image_size=profile.data.image_size, seed=s.seed)
    source = resolve_data_source(profile.data.huatuo_path) if profile.data.huatuo_path else HUB_ID
    ds = draw_panel(load_huatuo_panel(source, benchmarks=s.benchmarks), s.benchmarks, s.per_benchmark, s.seed)
    return resize_images(ds, profile.model.max_pixels, "panel images")
