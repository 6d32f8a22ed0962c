"""The rehearsal: the paper profile run end to end on a CPU with small parts in the hubs' exact layouts.

``configs/rehearsal.yaml`` is ``configs/paper.yaml`` with smaller parts. It may differ from it only in the settings
of :data:`MAY_DIFFER`: model ids (local folders), data paths (local files), sizes (items, steps, token limits,
batch) and the number of processes; every other setting is the paper's (``tests/test_rehearsal.py`` checks this
for every arm of the study). Its parts go down the same code branches as the hub ids:

- models (:func:`medrl_lib.hub_standins.build_hub_standins`): small ``Qwen2VLForConditionalGeneration`` stand-ins
  of ``Qwen/Qwen2-VL-2B-Instruct`` and ``Qwen/Qwen2-VL-2B`` (chat template for the instruct model only, each
  with the end-of-sequence ids of its hub configuration), ``BioGptForCausalLM`` with ``BioGptTokenizer``,
  a ``RobertaForSequenceClassification`` cross-encoder and a ``MistralForCausalLM`` with a chat template;
- data (:mod:`medrl_lib.data.fixtures`): PMC-VQA's ``train_2.csv``, ``test_2.csv`` and ``images_2.zip``, and the
  HuatuoGPT-Vision evaluation JSON with ``images.zip``, each with malformed rows of every kind the loaders skip.

They are built on first use (:func:`ensure_part`, called by :func:`medrl_lib.config.resolve_source` when a
profile's local path is resolved), once, deterministically, under :data:`ROOT`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: Where the rehearsal's parts live, relative to the repository root.
ROOT = ".cache/medrl/rehearsal"

#: Settings in which the rehearsal profile may differ from the paper profile (dotted keys; a key ending in
#: ``.*`` covers a whole section). Everything else must be equal.
MAY_DIFFER = {
    # names
    "name": "the profile's name",
    # model ids and data paths: local stand-ins in the hubs' layouts
    "model.base": "model id", "model.instruct": "model id", "grpo.semantic_judge": "model id",
    "eval.similarity": "model id", "eval.perplexity": "model id", "eval.thinking": "model id",
    "data.pmc_vqa_path": "data path", "data.huatuo_path": "data path",
    # sizes: items, steps, token limits, batch
    "data.train_size": "items", "data.test_size": "items", "data.test_per_modality": "items",
    "medvlm_r1.data.train_size": "items", "medvlm_r1.data.test_per_modality": "items",
    "medvlm_r1.grpo.max_steps": "steps", "medvlm_r1.grpo.save_steps": "steps",
    "medvlm_r1.grpo.max_completion_length": "token limit", "medvlm_r1.eval.max_new_tokens": "token limit",
    "grpo.max_steps": "steps", "grpo.save_steps": "steps", "sft.max_steps": "steps", "sft.dpo_max_steps": "steps",
    "grpo.max_completion_length": "token limit", "eval.max_new_tokens": "token limit",
    "grpo.length_target_tokens": "token limit",
    "eval.batch_size": "batch", "panel.per_benchmark": "items",
    # processes, and how many seeds (runs) each arm has
    "num_processes": "processes (2 over gloo)", "seeds": "runs (one seed)",
}

#: Sizes of the rehearsal's data files (the profile's item counts must fit in what survives the loaders).
PMC_VQA_PER_MODALITY = 12
HUATUO_SIZES = dict(n_train_mri=8, n_test_per_modality=4, spare=2, panel_items=3)


def ensure_part(path: str | Path, root: str | Path) -> None:
    """Build the rehearsal part that ``path`` names (a model folder or a data folder under ``root``, the absolute
    :data:`ROOT`) if it is missing; any other path is left alone."""
    path, base = Path(path), Path(root)
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        return
    if not rel.parts:
        return
    data = base / "data" / rel.parts[1] if rel.parts[0] == "data" and len(rel.parts) > 1 else None
    if data is not None and data.exists() and not _current(data):
        shutil.rmtree(data, ignore_errors=True)  # built by an older fixture: built again
    if path.exists():
        return
    if rel.parts[0] == "models":
        from .family_standins import FAMILY_IDS, build_family_standins
        from .hub_standins import build_hub_standins

        if len(rel.parts) > 1 and rel.parts[1] in {h.split("/", 1)[1] for h in FAMILY_IDS}:
            build_family_standins(base / "models")
        else:
            build_hub_standins(base / "models")
    elif rel.parts[:2] == ("data", "pmc-vqa"):
        _build_atomic(base / "data" / "pmc-vqa", "pmc")
    elif rel.parts[:2] == ("data", "huatuo"):
        _build_atomic(base / "data" / "huatuo", "huatuo")


#: The version of the rehearsal's data files: a data folder built with another is built again (2: the HuatuoGPT-Vision
#: file gained the panel's benchmarks).
DATA_VERSION = 2
_MARKER = "medrl_rehearsal.json"


def _current(folder: Path) -> bool:
    """Whether the data folder was built with this :data:`DATA_VERSION`."""
    try:
        return json.loads((folder / _MARKER).read_text()).get("version") == DATA_VERSION
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def _build_atomic(folder: Path, which: str) -> None:
    """Write a data folder into a temporary sibling, then rename it into place."""
    from .data import fixtures

    if folder.exists():
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if which == "pmc":
        fixtures.write_pmc_vqa(tmp, n_per_modality=PMC_VQA_PER_MODALITY, seed=0)
    else:
        from .data import medvlm_r1_test_items

        # the published test items' identifiers (the first of each modality) with stand-in images and options
        fixtures.write_huatuo_eval(tmp, seed=0, published=medvlm_r1_test_items(HUATUO_SIZES["n_test_per_modality"]),
                                   **HUATUO_SIZES)
    (tmp / _MARKER).write_text(json.dumps({"version": DATA_VERSION}))
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_parts(root: str | Path) -> dict[str, Path]:
    """Build every part of the rehearsal under ``root`` (the absolute :data:`ROOT`: models and both data folders);
    return their folders."""
    base = Path(root)
    for rel in ("models/Qwen2-VL-2B-Instruct", "data/pmc-vqa", "data/huatuo"):
        ensure_part(base / rel, base)
    return {"models": base / "models", "pmc-vqa": base / "data" / "pmc-vqa", "huatuo": base / "data" / "huatuo"}


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}`` (mappings of reward weights stay whole values)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k != "reward_weights":
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def drift(paper: dict, rehearsal: dict) -> dict[str, tuple]:
    """Settings (dotted keys) on which two resolved profiles differ outside :data:`MAY_DIFFER`:
    ``{key: (paper value, rehearsal value)}``.

    >>> drift({"grpo": {"beta": 0.04, "max_steps": 1500}}, {"grpo": {"beta": 0.0, "max_steps": 4}})
    {'grpo.beta': (0.04, 0.0)}
    """
    a, b = flatten(paper), flatten(rehearsal)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if k not in MAY_DIFFER and a.get(k) != b.get(k)}
