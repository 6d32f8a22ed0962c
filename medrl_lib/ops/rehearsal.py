"""The rehearsal: the paper profile run end to end on a CPU with small parts in the hubs' exact layouts.

``configs/rehearsal.yaml`` is ``configs/paper.yaml`` with smaller parts. It may differ from it only in the settings
of :data:`MAY_DIFFER`: model ids (local folders), data paths (local files), sizes (items, steps, token limits,
batch) and the number of processes; every other setting is the paper's (``tests/test_rehearsal.py`` checks this
for every arm of the study). Its parts go down the same code branches as the hub ids:

- models (:func:`medrl_lib.models.hub_standins.build_hub_standins`): small ``Qwen2VLForConditionalGeneration`` stand-ins
  of ``Qwen/Qwen2-VL-2B-Instruct`` and ``Qwen/Qwen2-VL-2B`` (chat template for the instruct model only, each
  with the end-of-sequence ids of its hub configuration), ``BioGptForCausalLM`` with ``BioGptTokenizer``,
  a ``RobertaForSequenceClassification`` cross-encoder and a ``MistralForCausalLM`` with a chat template;
- data (:mod:`medrl_lib.data.fixtures`): PMC-VQA's ``train_2.csv``, ``test_2.csv`` and ``images_2.zip``, and the
  HuatuoGPT-Vision evaluation JSON with ``images.zip``, each with malformed rows of every kind the loaders skip.

They are built on first use (:func:`medrl_lib.models.sources.resolve_source` and
:func:`medrl_lib.data.sources.resolve_data_source`, when a profile's local path is resolved), once,
deterministically, under :data:`ROOT`; :func:`ensure_parts` builds them all.
"""

from __future__ import annotations

from pathlib import Path

from medrl_lib.data.sources import REHEARSAL_ROOT
from medrl_lib.models.sources import ensure_part

#: Where the rehearsal's parts live, relative to the repository root.
ROOT = REHEARSAL_ROOT

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
