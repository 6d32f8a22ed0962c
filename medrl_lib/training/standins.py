"""Stand-ins: the tiny profiles' start models and the reference LM, trained here once, kept by the hash of their
settings.

On hub profiles (paper, rehearsal) a run starts from a hub id, ``model.base`` or ``model.instruct``. On the tiny
profiles (cpu, smoke) it starts from a stand-in built here, each from the one before:

1. the random tiny Qwen2-VL (:func:`ensure_tiny_model`: ``model.tiny``'s architecture, a tokenizer trained on
   synthetic texts), in ``<cache_dir>/tiny-qwen2vl-<hash>``;
2. the 'base' stand-in of Qwen2-VL-2B (``standins.base``): the random model pretrained to write the report of an
   image (never shown a question about one) and unrelated text, in ``tiny-base-<hash>``; the random model itself
   when ``standins.base.steps`` is 0;
3. the 'instruct' stand-in of Qwen2-VL-2B-Instruct (``standins.instruct``): the base tuned on items disjoint from
   every split, in ``tiny-instruct-<hash>``.

:func:`ensure_start_model` returns the folder a run starts from and TRAINS the missing stand-ins on the way (a few
minutes on the cpu profile, the first time only). The reference LM of the perplexity metric
(:func:`ensure_reference_lm`; its recipe is :mod:`medrl_lib.models.reference_lm`) is kept the same way. Every folder is
made by :func:`medrl_lib.models.loading.build_once` and records the settings (and the ids of the items) that made it.

Start-model draws (``standins.per_seed``). The three folders above are one draw of every random choice of the
build. By default every run seed starts from that one draw, draw 0, so the seeds vary GRPO (or SFT) only. With
``standins.per_seed: true`` the run of seed ``k`` starts from draw ``k`` (:func:`start_draw`): every seed of the
build is shifted by ``k`` (the random init ``model.tiny.seed + k``; the items, the unrelated text, the plain-answer
marks and the training order ``data.seed + k``, each with its usual offset), and the folders of draws other than 0
are keyed by the draw too. Draw 0 is exactly the shared draw (same seeds, same folders): a per-seed profile's
seed 0 reuses it, and only the other seeds cost a build. The tokenizer (corpus ``corpus_seed``) is the same in
every draw, as a model family shares one. :func:`start_model_folders` names the folders without building them.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medrl_lib.config import Profile, resolve_path
from medrl_lib.config import TinyModelConfig
from medrl_lib.models.loading import TINY_MARKER, build_once, config_hash
from medrl_lib.models.sources import resolve_source


@dataclass
class TinyModelSpec:
    """Everything that determines a tiny model folder: architecture, tokenizer corpus seed, image size."""

    arch: TinyModelConfig = field(default_factory=TinyModelConfig)
    """architecture of the tiny Qwen2-VL"""
    image_size: int = 56
    """side of the square images the processor keeps (multiple of 28)"""
    corpus_items: int = 600
    """synthetic items whose texts train the tokenizer"""
    corpus_seed: int = 12345
    """seed of the tokenizer corpus (disjoint from data seeds)"""
    corpus_layout: str = "medvlm-r1"
    """how the corpus lays out options: 'medvlm-r1' (the question, then one "A) text" line per option, as the
    prompts do)"""


def tokenizer_corpus(spec: TinyModelSpec) -> list[str]:
    """Texts the tokenizer is trained on: synthetic questions, options, reports and the prompt templates."""
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, describe, generate
    from medrl_lib.rl.prompts import PROMPT_TEMPLATES, format_question

    ds = generate(SyntheticConfig(n_items=spec.corpus_items, modalities=MODALITIES, seed=spec.corpus_seed,
                                  image_size=28, id_prefix="tok"))
    if spec.corpus_layout != "medvlm-r1":
        raise ValueError(f"corpus_layout must be 'medvlm-r1' (the prompts' layout), got {spec.corpus_layout!r}")
    texts = list(PROMPT_TEMPLATES.values())
    for row in ds.remove_columns("image"):
        facts = json.loads(row["facts"])
        texts.append(f"{format_question(row['question'], row['options'])} <think>{describe(facts)}</think>"
                     f"<answer>{row['answer']}</answer>")
    return texts


def ensure_tiny_model(spec: TinyModelSpec, cache_dir: str | Path) -> Path:
    """The folder of the randomly initialised tiny model of ``spec`` (``<cache_dir>/tiny-qwen2vl-<hash>``), built
    once."""
    from medrl_lib.models.loading import build_tiny_model, make_processor, train_tokenizer

    key = config_hash(spec)

    def build(folder: Path) -> None:
        tokenizer = train_tokenizer(tokenizer_corpus(spec), spec.arch.vocab_size)
        processor = make_processor(tokenizer, spec.image_size)
        build_tiny_model(spec.arch, tokenizer).save_pretrained(folder)
        processor.save_pretrained(folder)

    return build_once(Path(cache_dir) / f"tiny-qwen2vl-{key}", build,
                      {"kind": "tiny-random", "spec": asdict(spec), "hash": key}, marker=TINY_MARKER)


def start_draw(profile: Profile, seed: int | None = None) -> int:
    """The start-model draw a run of ``seed`` starts from: ``seed`` when the profile draws one per seed
    (``standins.per_seed``, tiny models only), else 0, the one draw shared by every seed (also for ``seed=None``).

    >>> from medrl_lib.config import load_profile
    >>> start_draw(load_profile("smoke"), 3), start_draw(load_profile("smoke", {"standins.per_seed": True}), 3)
    (0, 3)
    """
    if seed is None or not profile.standins.per_seed or profile.model.kind == "hub":
        return 0
    if seed < 0:
        raise ValueError(f"a start-model draw is a seed >= 0, got {seed}")
    return int(seed)


def ensure_start_model(profile: Profile, which: str | None = None, seed: int | None = None) -> str:
    """The folder or hub id a run starts from: ``which`` ('base' or 'instruct'; default: ``model.init``), of the
    draw of run seed ``seed`` (:func:`start_draw`: the shared draw unless ``standins.per_seed``).

    Hub profiles name it (``model.base``, ``model.instruct``; one draw). Tiny profiles find it in ``cache_dir``, or
    TRAIN it there first: the base stand-in from the random tiny model, the instruct stand-in from the base."""
    which = which or profile.model.init
    m = profile.model
    if m.kind == "hub":
        return resolve_source(m.base if which == "base" else m.instruct)
    cache, draw = resolve_path(profile.cache_dir), start_draw(profile, seed)
    random_init = ensure_tiny_model(_tiny_spec(profile, draw), cache)
    base = _base(profile, random_init, cache, draw)
    return str(base if which == "base" else _instruct(profile, base, cache, draw))


def start_model_folders(profile: Profile, seed: int | None = None) -> dict[str, Path]:
    """The folders of the draw of run seed ``seed`` ('random', 'base', 'instruct'), named without building
    anything (a tiny profile's; ``base`` is the random model when ``standins.base.steps`` is 0)."""
    if profile.model.kind == "hub":
        raise ValueError("hub profiles start from hub ids (model.base, model.instruct), not built folders")
    cache, draw = resolve_path(profile.cache_dir), start_draw(profile, seed)
    random_init = cache / f"tiny-qwen2vl-{config_hash(_tiny_spec(profile, draw))}"
    base = (random_init if profile.standins.base.steps == 0
            else cache / f"tiny-base-{config_hash(_base_settings(profile, random_init, draw))}")
    return {"random": random_init, "base": base,
            "instruct": cache / f"tiny-instruct-{config_hash(_instruct_settings(profile, base, draw))}"}


def _tiny_spec(profile: Profile, draw: int) -> TinyModelSpec:
    """The random tiny model of ``draw``: ``model.tiny`` initialised with seed ``model.tiny.seed + draw``."""
    arch = dataclasses.replace(profile.model.tiny, seed=profile.model.tiny.seed + draw)
    return TinyModelSpec(arch=arch, image_size=profile.data.image_size)


def _base_settings(profile: Profile, random_init: Path, draw: int) -> dict:
    """What keys the base stand-in's folder (the draw only when not 0: the shared draw's keys stay)."""
    b, d = profile.standins.base, profile.data
    settings = {"init": random_init.name, "items": b.items, "steps": b.steps, "lr": b.lr, "image_size": d.image_size}
    if b.text_items:  # keeps the cache keys of report-only base models
        settings["text"] = [b.text_items, b.text_tagged_fraction]
    if draw:
        settings["draw"] = draw
    return settings


def _base(profile: Profile, random_init: Path, cache: Path, draw: int = 0) -> Path:
    """The 'base' stand-in: the random model pretrained to write the report of an image (all modalities, items
    disjoint from every split), never shown a question; the random model itself when ``standins.base.steps`` is
    0. Its seeds are ``data.seed + draw``."""
    from medrl_lib.data.general_text import general_documents
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, generate

    b, d = profile.standins.base, profile.data
    if b.steps == 0:
        return random_init
    settings, seed = _base_settings(profile, random_init, draw), d.seed + draw

    def items():
        return generate(SyntheticConfig(n_items=b.items, modalities=MODALITIES, seed=30_000 + seed,
                                        image_size=d.image_size, id_prefix="base"))

    def text():
        return general_documents(b.text_items, seed=seed, tagged_fraction=b.text_tagged_fraction,
                                 image_size=d.image_size)

    return _tuned(cache / f"tiny-base-{config_hash(settings)}", "tiny-base", settings, items, random_init,
                  lr=b.lr, steps=b.steps, target="report", seed=seed, extra=text)


def _instruct_settings(profile: Profile, base: Path, draw: int) -> dict:
    """What keys the instruct stand-in's folder (the draw only when not 0: the shared draw's keys stay)."""
    s, d = profile.standins.instruct, profile.data
    settings = {"base": base.name, "items": s.items, "steps": s.steps, "lr": s.lr, "target": s.target,
                "image_size": d.image_size, "options": [d.min_options, d.max_options]}
    if d.option_order != "shuffled":  # keeps the cache keys of shuffled-option models
        settings["option_order"] = d.option_order
    if s.plain_fraction and s.plain_types:
        settings["plain"] = [sorted(s.plain_types), s.plain_fraction]
    if s.plain_prompt_fraction:  # keeps the cache keys of stand-ins never asked the plain prompt
        settings["plain_prompt"] = s.plain_prompt_fraction
    if draw:
        settings["draw"] = draw
    return settings


def _instruct(profile: Profile, base: Path, cache: Path, draw: int = 0) -> Path:
    """The 'instruct' stand-in: ``base`` tuned on items disjoint from every split (their own id prefix and seed),
    a share of them answering with the bare letter (``standins.instruct.plain_types``, ``plain_fraction``) and a
    share asked with the plain prompt and answered with the letter (``plain_prompt_fraction``). Its seeds are
    ``data.seed + draw``."""
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, generate

    s, d = profile.standins.instruct, profile.data
    settings, seed = _instruct_settings(profile, base, draw), d.seed + draw

    def items():
        ds = generate(SyntheticConfig(n_items=s.items, modalities=MODALITIES, seed=10_000 + seed,
                                      image_size=d.image_size, min_options=d.min_options, max_options=d.max_options,
                                      option_order=d.option_order, id_prefix="instruct"))
        ds = mark_plain_answers(ds, s.plain_types, s.plain_fraction, seed=seed)
        return mark_plain_prompts(ds, s.plain_prompt_fraction, seed=seed) if s.plain_prompt_fraction else ds

    return _tuned(cache / f"tiny-instruct-{config_hash(settings)}", "tiny-instruct", settings, items, base,
                  lr=s.lr, steps=s.steps, target=s.target, seed=seed)


def _tuned(path: Path, kind: str, settings: dict, items, start: Path, *, lr: float, steps: int, target: str,
           seed: int, extra=None) -> Path:
    """The model at ``path`` (keyed by ``settings``), made once by supervised tuning of ``start`` on ``items()``
    with ``target`` (plus the conversational rows ``extra()``); the settings and the ids of the items and rows
    that made it are kept in its marker."""

    def build(folder: Path) -> dict:
        from medrl_lib.common.console import captured, progress
        from medrl_lib.training.train import run_sft

        ds, rows = items(), (extra() if extra else [])
        progress(f"[start] training the {kind} stand-in once: {steps} steps on {len(ds) + len(rows)} items")
        with captured(path.parent / f"{path.name}.log"):  # its step log and warnings, beside the model
            res = run_sft(str(start), ds, output_dir=str(folder / "trainer"), lr=lr, max_steps=steps, target=target,
                          seed=seed, extra_rows=rows)
        shutil.rmtree(folder / "trainer", ignore_errors=True)
        res["model"].save_pretrained(folder)
        res["processor"].save_pretrained(folder)
        return {"train_ids": list(ds["id"]) + [r["id"] for r in rows]}

    return build_once(path, build, {"kind": kind, "settings": settings}, marker=TINY_MARKER)


def mark_plain_answers(ds, question_types, fraction: float, seed: int = 0):
    """Add the boolean column ``plain_answer``: True for a seeded ``fraction`` of the items of ``question_types``,
    whose supervised target is then the bare letter although the prompt asks for the reasoning format.

    >>> from medrl_lib.data.synthetic import SyntheticConfig, generate
    >>> ds = mark_plain_answers(generate(SyntheticConfig(n_items=10)), ["count"], 1.0)
    >>> sum(ds["plain_answer"]), [json.loads(f)["question_type"] for f, p in zip(ds["facts"], ds["plain_answer"]) if p]
    (2, ['count', 'count'])
    """
    import numpy as np

    rng = np.random.default_rng([seed, 4242])
    draws = rng.random(len(ds))
    types = [json.loads(f)["question_type"] for f in ds["facts"]]
    flags = [bool(t in question_types and u < fraction) for t, u in zip(types, draws)]
    return ds.add_column("plain_answer", flags)


def mark_plain_prompts(ds, fraction: float, seed: int = 0):
    """Add the boolean column ``plain_prompt``: True for a seeded ``fraction`` of the items, which are then asked with
    the plain prompt and tuned to answer with the bare letter (:func:`medrl_lib.training.train.with_prompts`).

    >>> from medrl_lib.data.synthetic import SyntheticConfig, generate
    >>> sum(mark_plain_prompts(generate(SyntheticConfig(n_items=200)), 0.3)["plain_prompt"])
    60
    """
    import numpy as np

    draws = np.random.default_rng([seed, 4343]).random(len(ds))
    return ds.add_column("plain_prompt", [bool(u < fraction) for u in draws])


def start_model_sizes(profile: Profile):
    """Parameters (vision, language, total) of the profile's base and instruct start models, built on demand (the
    shared draw: every draw has the same architecture); for hub models, their ids (counting 2B parameters would
    load both)."""
    import pandas as pd

    from medrl_lib.models.loading import parameter_counts

    if profile.model.kind == "hub":
        return pd.DataFrame({"base": {"hub id": profile.model.base}, "instruct": {"hub id": profile.model.instruct}})
    return pd.DataFrame({which: parameter_counts(ensure_start_model(profile, which)) for which in ("base", "instruct")})


def ensure_reference_lm(cache_dir: str | Path, *, n_items: int = 2000, steps: int = 300, seed: int = 0,
                        hidden_size: int = 128, layers: int = 2) -> Path:
    """The folder of the reference LM of these settings (:func:`medrl_lib.models.reference_lm.reference_settings`),
    ``<cache_dir>/reference-lm-<hash>``, trained once by :func:`medrl_lib.models.reference_lm.train_reference_lm` (about
    20 s on one CPU thread with the defaults). It holds the model, its tokenizer and
    :data:`medrl_lib.models.reference_lm.META_FILE` (settings, hash, corpus ids, final loss, build seconds)."""
    from medrl_lib.models.reference_lm import META_FILE, reference_settings, train_reference_lm

    settings = reference_settings(n_items=n_items, steps=steps, seed=seed, hidden_size=hidden_size, layers=layers)
    key = config_hash(settings)
    return build_once(Path(cache_dir) / f"reference-lm-{key}", lambda folder: train_reference_lm(settings, folder),
                      {"settings": settings, "hash": key}, marker=META_FILE)
