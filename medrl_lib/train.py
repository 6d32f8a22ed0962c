"""Training: GRPO and SFT through TRL, every paper setting taken explicitly from the profile.

The datasets come in the common schema (:mod:`medrl_lib.data.schema`); this module adds TRL's conversational
``prompt`` (and, for SFT, ``completion``) columns, checks prompt lengths (never truncating image tokens,
STUDY.md 9) and runs the trainers. The policy a run starts from is resolved by :func:`ensure_policy`: hub ids on
the paper profile; on the cpu/smoke profiles, the tiny model and its supervised 'instruct' stand-in, built
once and cached by the hash of their settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import torch

from . import rewards as R
from .config import Profile, resolve_path
from .data.schema import validate_rows
from .models import TinyModelSpec, config_hash, ensure_tiny_model, load_model, save_model
from .prompts import conversation

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

#: Reward functions by the name used in ``grpo.reward_weights``.
REWARD_FUNCS: dict[str, Callable] = {"format_reward": R.format_reward, "accuracy_reward": R.accuracy_reward}


def reasoning_target(row: dict) -> str:
    """The supervised target of the tiny 'instruct' stand-in: the report as reasoning, then the letter."""
    from .data.synthetic import describe

    return f"<think>{describe(json.loads(row['facts']))}</think><answer>{row['answer']}</answer>"


def with_prompts(ds, mode: str = "reasoning", target: str | None = None):
    """Add TRL's conversational ``prompt`` (and ``completion`` when ``target`` is 'reasoning' or 'plain')."""

    def add(row):
        out = {"prompt": conversation(row["question"], row["options"], mode)}
        if target == "reasoning":
            out["completion"] = [{"role": "assistant", "content": reasoning_target(row)}]
        elif target == "plain":
            out["completion"] = [{"role": "assistant", "content": row["answer"]}]
        return out

    return ds.map(add, desc="prompts")


def prompt_token_counts(ds, processor, mode: str = "reasoning") -> list[int]:
    """Tokens of each item's full prompt (chat template, text and image tokens) as the policy sees it."""
    from .prompts import chat_messages

    counts = []
    for row in ds:
        text = processor.apply_chat_template(chat_messages(row["question"], row["options"], mode),
                                             add_generation_prompt=True, tokenize=False)
        enc = processor(text=[text], images=[row["image"]], return_tensors="pt")
        counts.append(int(enc["input_ids"].shape[1]))
    return counts


def check_prompt_lengths(ds, processor, max_prompt_length: int, name: str, mode: str = "reasoning") -> None:
    """Reject (never truncate) prompts longer than ``max_prompt_length``, naming the first offending item."""
    for row_id, n in zip(ds["id"], prompt_token_counts(ds, processor, mode)):
        if n > max_prompt_length:
            raise ValueError(f"{name}: item {row_id!r} has a {n}-token prompt, over max_prompt_length="
                             f"{max_prompt_length}; truncation would cut image tokens (raise the limit)")


def load_policy(profile: Profile, path: str):
    """``(model, processor)`` at ``path`` with the profile's dtype, attention kernel and image size limit."""
    m = profile.model
    return load_model(path, dtype=m.dtype, attn_implementation=m.attn_implementation,
                      max_pixels=m.max_pixels if m.kind == "hub" else None)


def ensure_policy(profile: Profile, which: str | None = None) -> str:
    """A loadable path or hub id of the start policy ('base' or 'instruct'; default: ``profile.model.init``)."""
    which = which or profile.model.init
    m = profile.model
    if m.kind == "hub":
        return m.base if which == "base" else m.instruct
    cache = resolve_path(profile.cache_dir)
    spec = TinyModelSpec(arch=m.tiny, image_size=profile.data.image_size)
    base = ensure_tiny_model(spec, cache)
    if which == "base":
        return str(base)
    settings = {"base": base.name, "items": m.instruct_items, "steps": m.instruct_steps, "lr": m.instruct_lr,
                "target": m.instruct_target, "image_size": profile.data.image_size,
                "options": [profile.data.min_options, profile.data.max_options]}
    path = cache / f"tiny-instruct-{config_hash(settings)}"
    if (path / "medrl_tiny.json").exists():
        return str(path)
    from .data.schema import MODALITIES
    from .data.synthetic import SyntheticConfig, generate

    # Disjoint from every train/test split: its own id prefix and seed.
    ds = generate(SyntheticConfig(n_items=m.instruct_items, modalities=MODALITIES, seed=10_000 + profile.data.seed,
                                  image_size=profile.data.image_size, min_options=profile.data.min_options,
                                  max_options=profile.data.max_options, id_prefix="instruct"))
    model, processor = run_sft(str(base), ds, output_dir=str(path) + ".work", lr=m.instruct_lr,
                               max_steps=m.instruct_steps, target=m.instruct_target, seed=profile.data.seed)
    save_model(model, processor, path, meta={"kind": "tiny-instruct", "settings": settings, "train_ids": ds["id"]})
    import shutil

    shutil.rmtree(str(path) + ".work", ignore_errors=True)
    return str(path)


def run_sft(model_path: str, ds, *, output_dir: str, lr: float, max_steps: int, target: str = "reasoning",
            batch_size: int = 16, seed: int = 0, peft_config=None, report_to: str = "none",
            bf16: bool = False, gradient_checkpointing: bool = False):
    """Supervised fine-tuning with TRL's ``SFTTrainer`` (loss on completion tokens only). Returns (model, processor)."""
    from trl import SFTConfig, SFTTrainer

    validate_rows(ds, "sft train set")
    model, processor = load_model(model_path)
    data = with_prompts(ds, target=target).select_columns(["prompt", "completion", "image"])
    args = SFTConfig(
        output_dir=output_dir,
        learning_rate=lr,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, max_steps // 20),
        completion_only_loss=True,
        max_length=None,  # never truncate: image tokens must stay whole
        bf16=bf16,  # TRL's default is True
        gradient_checkpointing=gradient_checkpointing,  # TRL's default is True
        packing=False,
        logging_steps=max(1, max_steps // 20),
        save_strategy="no",
        report_to=report_to,
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                         peft_config=peft_config)
    trainer.train()
    return trainer.model, processor


def grpo_args(profile: Profile, output_dir: str, **extra):
    """TRL ``GRPOConfig`` with every paper setting taken from the profile, none left to TRL's defaults."""
    from trl import GRPOConfig

    g = profile.grpo
    names = list(g.reward_weights)
    unknown = [n for n in names if n not in REWARD_FUNCS]
    if unknown:
        raise ValueError(f"grpo.reward_weights names unknown reward {unknown[0]!r}; known: {sorted(REWARD_FUNCS)}")
    kwargs = dict(
        output_dir=output_dir,
        learning_rate=g.learning_rate,
        max_steps=g.max_steps,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=0,
        max_completion_length=g.max_completion_length,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon,
        loss_type=g.loss_type,
        scale_rewards=g.scale_rewards,
        num_iterations=g.num_iterations,
        importance_sampling_level="token",
        multi_objective_aggregation="sum_then_normalize",
        mask_truncated_completions=False,
        reward_weights=[g.reward_weights[n] for n in names],
        logging_steps=g.logging_steps,
        save_steps=g.save_steps,
        save_strategy="steps",
        gradient_checkpointing=g.gradient_checkpointing,
        bf16=g.bf16,
        seed=g.seed,
        data_seed=g.seed,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        log_completions=False,
    )
    kwargs.update(extra)
    return GRPOConfig(**kwargs), [REWARD_FUNCS[n] for n in names]


def run_grpo(profile: Profile, model_path: str, train_ds, output_dir: str, *, callbacks: Sequence = (),
             trainer_cls=None, **extra) -> dict:
    """Train with GRPO; returns ``{"log_history": [...], "model": model, "processor": processor}``."""
    from trl import GRPOTrainer

    validate_rows(train_ds, "grpo train set")
    model, processor = load_policy(profile, model_path)
    check_prompt_lengths(train_ds, processor, profile.grpo.max_prompt_length, "grpo train set")
    args, reward_funcs = grpo_args(profile, output_dir, **extra)
    data = with_prompts(train_ds)
    if profile.grpo.beta > 0 and not getattr(model.config, "_name_or_path", ""):
        model.config._name_or_path = model_path  # TRL rebuilds the reference model from this path
    cls = trainer_cls or GRPOTrainer
    trainer = cls(model=model, reward_funcs=reward_funcs, args=args, train_dataset=data,
                  processing_class=processor, callbacks=list(callbacks))
    trainer.train()
    return {"log_history": trainer.state.log_history, "model": trainer.model, "processor": processor,
            "args": asdict(profile.grpo)}
