"""The cpu profile's reference LM for the perplexity metric: the offline analogue of BioGPT.

Zhu et al. (Appendix B) report the perplexity of the model's reasoning under ``microsoft/biogpt``, a
causal LM trained on biomedical text. Offline, its stand-in is a small ``Qwen2ForCausalLM`` trained here
on a synthetic radiology-report corpus: :func:`~medrl_lib.data.synthetic.describe` of freshly generated
synthetic items (seed ``20_000 + seed``, id prefix ``"reflm"``, so the corpus shares no items with the
training and test splits). Low perplexity then means "reads like a report of these images", as under
BioGPT it means "reads like biomedical text".

Text convention (the one :class:`medrl_lib.scoring.metrics.Perplexity` scores with): the tokenizer from
:func:`medrl_lib.models.loading.train_tokenizer` has no BOS token and the EOS token ``<|im_end|>``; every training
sequence is ``<|im_end|> report <|im_end|>``, so the leading EOS acts as the BOS that the first report
token is predicted from (the GPT-2 convention of one separator token), and the trailing one ends it.

This module holds its recipe (:func:`reference_settings`, :func:`report_corpus`, :func:`train_reference_lm`);
:func:`medrl_lib.training.standins.ensure_reference_lm` builds it once, deterministically given its settings, in
``cache_dir/reference-lm-<hash>``, where the hash is :func:`~medrl_lib.models.loading.config_hash` of every setting (the
training constants included), marked finished by :data:`META_FILE`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

META_FILE = "meta.json"
"""The file that marks a finished reference LM folder: its settings, hash, corpus ids and final loss."""

_FIXED: dict[str, Any] = {
    "kind": "reference-lm",
    "version": 1,
    "vocab_size": 512,
    "batch_size": 32,
    "lr": 3e-3,
    "warmup_steps": 20,
    "weight_decay": 0.01,
    "heads": 4,
    "kv_heads": 2,
    "mlp_ratio": 3,
    "image_size": 28,
}
"""Training constants, part of the folder hash: vocabulary target, AdamW batch/lr/warmup/decay, shape."""


def reference_settings(*, n_items: int = 2000, steps: int = 300, seed: int = 0, hidden_size: int = 128,
                       layers: int = 2) -> dict[str, Any]:
    """All settings of a reference LM build: the arguments of :func:`medrl_lib.training.standins.ensure_reference_lm` plus
    :data:`_FIXED`.

    >>> s = reference_settings(n_items=10)
    >>> s["n_items"], s["batch_size"], s["kind"]
    (10, 32, 'reference-lm')
    """
    for name, value in (("n_items", n_items), ("steps", steps), ("hidden_size", hidden_size), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if hidden_size % _FIXED["heads"]:
        heads = _FIXED["heads"]
        raise ValueError(f"hidden_size must be a multiple of {heads} (the attention heads), got {hidden_size}")
    return {**_FIXED, "n_items": n_items, "steps": steps, "seed": seed, "hidden_size": hidden_size, "layers": layers}


def report_corpus(n_items: int, seed: int) -> tuple[list[str], list[str]]:
    """``(ids, reports)``: :func:`~medrl_lib.data.synthetic.describe` of ``n_items`` fresh synthetic items.

    The items come from ``generate(SyntheticConfig(n_items, modalities=MODALITIES, seed=20_000 + seed,
    id_prefix="reflm", image_size=28))``; their images are not used.

    >>> ids, reports = report_corpus(3, 0)
    >>> ids[0], reports[0].split()[1:3]
    ('reflm-20000-000000', ['image', 'showing'])
    """
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, describe, generate

    ds = generate(SyntheticConfig(n_items, modalities=MODALITIES, seed=20_000 + seed, id_prefix="reflm",
                                  image_size=_FIXED["image_size"])).select_columns(["id", "facts"])
    return list(ds["id"]), [describe(json.loads(facts)) for facts in ds["facts"]]


def train_reference_lm(settings: dict[str, Any], out: Path) -> dict[str, Any]:
    """Train the reference LM described by ``settings`` (:func:`reference_settings`) and save it (model, tokenizer)
    into ``out``: a ``Qwen2ForCausalLM`` (``hidden_size`` wide, ``layers`` decoder layers, 4 attention heads, 2
    key/value heads, MLP 3 × wide, tied embeddings) with a byte-level BPE tokenizer
    (:func:`~medrl_lib.models.loading.train_tokenizer`, vocabulary target 512) on :func:`report_corpus`: ``steps`` AdamW
    steps (lr 3e-3, linear warm-up over 20 steps then constant, weight decay 0.01) on batches of 32 reports drawn
    as seeded random permutations of the corpus, each ``<|im_end|> report <|im_end|>`` right-padded, with the
    causal LM loss on every non-pad token after the first. Returns what :data:`META_FILE` records beside the
    settings: corpus ids, final loss (mean training loss of the last 10 steps), first loss, build seconds."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from medrl_lib.models.loading import train_tokenizer

    start = time.perf_counter()
    ids, reports = report_corpus(settings["n_items"], settings["seed"])
    tokenizer = train_tokenizer(reports, settings["vocab_size"])
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    sequences = [[eos, *tokenizer(text, add_special_tokens=False)["input_ids"], eos] for text in reports]
    width = settings["hidden_size"]
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=settings["mlp_ratio"] * width,
        num_hidden_layers=settings["layers"],
        num_attention_heads=settings["heads"],
        num_key_value_heads=settings["kv_heads"],
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=pad,
    )
    torch.manual_seed(settings["seed"])
    model = Qwen2ForCausalLM(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], weight_decay=settings["weight_decay"])
    warmup = settings["warmup_steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    generator = torch.Generator().manual_seed(settings["seed"])
    order: list[int] = []
    losses: list[float] = []
    for _ in range(settings["steps"]):
        while len(order) < settings["batch_size"]:
            order += torch.randperm(len(sequences), generator=generator).tolist()
        batch, order = order[: settings["batch_size"]], order[settings["batch_size"] :]
        input_ids, mask = right_pad([sequences[i] for i in batch], pad)
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
    model.eval()
    model.generation_config.pad_token_id = pad
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tail = losses[-10:]
    return {
        "settings": settings,
        "corpus_ids": ids,
        "final_loss": sum(tail) / len(tail),
        "first_loss": losses[0],
        "build_seconds": round(time.perf_counter() - start, 2),
    }


def right_pad(sequences: list[list[int]], pad_id: int):
    """``(input_ids, attention_mask)`` long tensors of ``sequences`` right-padded with ``pad_id``.

    >>> ids, mask = right_pad([[5, 6, 7], [8]], 0)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """
    import torch

    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask
