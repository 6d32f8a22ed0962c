"""Training: GRPO, full SFT, LoRA and DPO through TRL, every paper setting taken explicitly from the profile.

The datasets come in the common schema (:mod:`medrl_lib.data.schema`); this module adds TRL's conversational
``prompt`` (and, for SFT, ``completion``) columns, checks prompt lengths (never truncating image tokens,
a known failure mode of public GRPO code) and runs the trainers. :func:`fit` is the one switch between the
methods, called in the notebook's process by :mod:`medrl_lib.experiments.runs` and in each process of a multi-process run by
:mod:`medrl_lib.training.launch`. The model a run starts from comes from :func:`medrl_lib.training.standins.ensure_start_model`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from medrl_lib.config import Profile, SFTSettings
from medrl_lib.data.schema import validate_rows
from medrl_lib.data.synthetic import reasoning_target
from medrl_lib.models.loading import load_model
from medrl_lib.rl.prompts import conversation
from medrl_lib.training.budget import (  # noqa: F401 (re-exported: the training budget is part of what train trains)
    METHODS,
    SUPERVISED_METHODS,
    grpo_prompts_per_step,
    supervised_items_per_step,
    supervised_steps,
)
from medrl_lib.training.reward_funcs import build_reward_funcs

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

class ConciseProgress(TrainerCallback):
    """One line about every tenth of training (step, elapsed time, chosen metrics), in place of TRL's dump of
    every log dict."""

    def __init__(self, label: str, keys: dict[str, str]):
        self.label, self.keys, self.t0 = label, keys, time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        every = max(1, state.max_steps // 10)
        if not state.is_world_process_zero or not logs or (state.global_step % every and state.global_step != state.max_steps):
            return
        shown = " ".join(f"{name} {logs[k]:.3g}" for k, name in self.keys.items() if k in logs)
        if shown:
            print(f"[{self.label}] step {state.global_step}/{state.max_steps} ({time.time() - self.t0:.0f} s) {shown}",
                  flush=True)

    def install(self, trainer) -> None:
        """Replace the trainer's printer and progress bar with this callback."""
        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(self)


#: Metrics shown by the progress lines of each trainer.
PROGRESS_KEYS = {
    "grpo": {"reward": "reward", "rewards/format_reward/mean": "format", "rewards/accuracy_reward/mean": "accuracy",
             "completions/mean_length": "length", "kl": "kl"},
    "sft": {"loss": "loss", "mean_token_accuracy": "token-acc"},
    "dpo": {"loss": "loss", "rewards/accuracies": "pref-acc", "rewards/margins": "margin"},
}

def with_prompts(ds, mode: str = "reasoning", target: str | None = None):
    """Add TRL's conversational ``prompt`` (and ``completion`` when ``target`` is 'reasoning', 'plain' or
    'report'; 'report' is base-model pretraining: the image alone, then its report, no question)."""
    from medrl_lib.data.synthetic import describe

    def add(row):
        if target == "report":
            return {"prompt": [{"role": "user", "content": ""}],
                    "completion": [{"role": "assistant", "content": describe(json.loads(row["facts"]))}]}
        if row.get("plain_prompt"):  # an instruct item asked with the plain prompt: the bare letter
            return {"prompt": conversation(row["question"], row["options"], "plain"),
                    "completion": [{"role": "assistant", "content": row["answer"]}]}
        out = {"prompt": conversation(row["question"], row["options"], mode)}
        if target == "reasoning" and row.get("plain_answer"):  # an instruct item that ignores the format
            out["completion"] = [{"role": "assistant", "content": row["answer"]}]
        elif target == "reasoning":
            out["completion"] = [{"role": "assistant", "content": reasoning_target(row)}]
        elif target == "plain":
            out["completion"] = [{"role": "assistant", "content": row["answer"]}]
        return out

    return ds.map(add, desc="prompts")


def prompt_token_counts(ds, processor, mode: str = "reasoning") -> list[int]:
    """Tokens of each item's full prompt (chat template, text and image tokens) as the policy sees it."""
    from medrl_lib.rl.prompts import chat_messages

    counts = []
    for row in ds:
        text = processor.apply_chat_template(chat_messages(row["question"], row["options"], mode),
                                             add_generation_prompt=True, tokenize=False)
        enc = processor(text=[text], images=[row["image"]], return_tensors="pt")
        counts.append(int(enc["input_ids"].shape[1]))
    return counts


def stored_prompt_token_counts(ds, processor, mode: str = "reasoning") -> list[int]:
    """:func:`prompt_token_counts` of ``ds``; for a stored split (memory-mapped from
    :func:`medrl_lib.data.splits.stored_splits`), counted once per processor and kept beside its files, so that the
    other processes and arms read them instead of running the processor over every image again."""
    files = getattr(ds, "cache_files", None)
    if not files:
        return prompt_token_counts(ds, processor, mode)
    import hashlib

    from filelock import FileLock

    from medrl_lib.rl.vllm_inputs import pixel_limits

    tok = processor.tokenizer
    signature = json.dumps([tok.chat_template, len(tok), pixel_limits(processor.image_processor), mode,
                            list(ds["id"])], sort_keys=True)
    folder = Path(files[0]["filename"]).parent
    path = folder / f"prompt_tokens-{hashlib.sha256(signature.encode()).hexdigest()[:16]}.json"
    with FileLock(str(path) + ".lock"):
        if not path.exists():
            from medrl_lib.common.files import write_text

            write_text(path, json.dumps(prompt_token_counts(ds, processor, mode)))
    return json.loads(path.read_text())


def check_prompt_lengths(ds, processor, max_prompt_length: int, name: str, mode: str = "reasoning") -> None:
    """Reject (never truncate) prompts longer than ``max_prompt_length``, naming the first offending item."""
    for row_id, n in zip(ds["id"], stored_prompt_token_counts(ds, processor, mode)):
        if n > max_prompt_length:
            raise ValueError(f"{name}: item {row_id!r} has a {n}-token prompt, over max_prompt_length="
                             f"{max_prompt_length}; truncation would cut image tokens (raise the limit)")


def eval_device(profile: Profile) -> str:
    """Where the policy answers the test items: ``eval.device``, where 'auto' is the first GPU when one is
    present (the training GPUs are free once training has ended), else the CPU."""
    if profile.eval.device != "auto":
        return profile.eval.device
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def training_dtype(profile: Profile, distributed: bool) -> str:
    """The dtype the weights are loaded in for training. DeepSpeed (``distributed``) keeps fp32 master weights
    of bf16 models in its optimizer; a single process has no master copy, and AdamW steps on bf16 weights round
    updates of lr 1e-6 away, so a single process loads float32 weights and computes in bf16 under autocast
    (``grpo.bf16``, ``sft.bf16``).

    >>> from medrl_lib.config import load_profile
    >>> p = load_profile("paper")
    >>> training_dtype(p, distributed=True), training_dtype(p, distributed=False)
    ('bfloat16', 'float32')
    """
    dtype = profile.model.dtype
    return dtype if distributed or dtype == "float32" else "float32"


def load_policy(profile: Profile, path: str, *, device: str | None = None, dtype: str | None = None):
    """``(model, processor)`` at ``path`` with the profile's dtype (or ``dtype``), attention kernel and image size
    limit, on ``device`` (None: where the weights load). A hub model without a chat template (``Qwen/Qwen2-VL-2B``)
    gets the instruct model's, so that base and instruct see the same text (Methods)."""
    from medrl_lib.models.sources import resolve_source

    model, processor = load_model(resolve_source(path), device=device, **load_settings(profile, dtype))
    # Left padding, whatever the tokenizer ships: TRL left-pads the prompt ids but takes Qwen2-VL's
    # mm_token_type_ids from the processor's own padding, so right padding misplaces the image in M-RoPE (a shape
    # mismatch in the loss's forward pass, found by the rehearsal when two prompts of a batch differ in length).
    processor.tokenizer.padding_side = "left"
    return model, processor


def attention_kernel(model) -> str | None:
    """The attention implementation the loaded model actually uses (stored with every run)."""
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def report_to() -> str:
    """Where trainers log their curves: ``tensorboard`` (event files in ``<run>/tensorboard``, see
    ``medrl tensorboard``), or what the ``MEDRL_REPORT_TO`` environment variable names (``none``, ``wandb``...)."""
    return os.environ.get("MEDRL_REPORT_TO", "tensorboard")


def tensorboard_dir(output_dir: str) -> Path:
    """A run's TensorBoard folder: ``<run>/tensorboard`` for checkpoints in ``<run>/checkpoints`` (one process) or
    ``<run>/checkpoints/checkpoints`` (a multi-process run), which are removed when the run completes.

    >>> str(tensorboard_dir("r/zhu/sft/seed0/checkpoints")), str(tensorboard_dir("r/seed0/checkpoints/checkpoints"))
    ('r/zhu/sft/seed0/tensorboard', 'r/seed0/tensorboard')
    """
    folder = Path(output_dir)
    while folder.name == "checkpoints":
        folder = folder.parent
    return folder / "tensorboard"


@contextlib.contextmanager
def logging_dir(output_dir: str):
    """Trainers built inside write their TensorBoard events to :func:`tensorboard_dir` (transformers reads
    ``TENSORBOARD_LOGGING_DIR`` when a trainer is made)."""
    previous = os.environ.get("TENSORBOARD_LOGGING_DIR")
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(output_dir))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = previous


def _common_args(output_dir: str, *, lr: float, max_steps: int, batch_size: int, seed: int, bf16: bool,
                 deepspeed: str | None = None) -> dict:
    """Trainer arguments shared by the supervised trainers, each set explicitly (TRL's defaults drift)."""
    return dict(
        output_dir=output_dir,
        learning_rate=lr,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=1,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, max_steps // 20),
        logging_steps=max(1, max_steps // 20),
        save_strategy="no",
        report_to=report_to(),
        seed=seed,
        bf16=bf16,  # TRL's default is True
        gradient_checkpointing=False,  # TRL's default is True
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        deepspeed=deepspeed,
    )


def lora_config(s: SFTSettings):
    """The peft ``LoraConfig`` of the profile's LoRA baseline (language-model projections only)."""
    from peft import LoraConfig

    return LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout,
                      target_modules=r".*language_model.*\.(" + "|".join(s.lora_target_modules) + ")",
                      task_type="CAUSAL_LM", bias="none")


def run_sft(model_path: str, ds, *, output_dir: str, lr: float, max_steps: int, target: str = "reasoning",
            batch_size: int = 16, seed: int = 0, lora: SFTSettings | None = None, bf16: bool = False,
            deepspeed: str | None = None, extra_rows: Sequence[dict] = (), load: dict | None = None) -> dict:
    """Supervised fine-tuning with TRL's ``SFTTrainer`` (loss on completion tokens only); LoRA when ``lora``
    gives the adapter settings (merged into the weights at the end). ``extra_rows`` are conversational rows
    (``prompt``, ``completion``, ``image``) mixed into the items, e.g. the base model's unrelated text. ``load``:
    keyword arguments of :func:`medrl_lib.models.loading.load_model` (:func:`supervised_load`; default: float32, no pixel
    limit, as the tiny start models are built). Returns ``{"model", "processor", "log_history", "trainer"}``."""
    import datasets
    from trl import SFTConfig, SFTTrainer

    validate_rows(ds, "sft train set")
    model, processor = load_model(model_path, **(load or {}))
    mode = "plain" if target == "plain" else "reasoning"  # a plain-answer target is trained on the plain prompt
    data = with_prompts(ds, mode=mode, target=target).select_columns(["prompt", "completion", "image"])
    if extra_rows:
        extra = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "completion", "image")} for r in extra_rows])
        data = datasets.concatenate_datasets([data, extra.cast(data.features)])
    args = SFTConfig(**_common_args(output_dir, lr=lr, max_steps=max_steps, batch_size=batch_size, seed=seed,
                                    bf16=bf16, deepspeed=deepspeed),
                     loss_type="nll",  # MedVLM-R1's SFT baseline: negative log-likelihood of the target
                     completion_only_loss=True,
                     max_length=None,  # never truncate: image tokens must stay whole
                     packing=False)
    with logging_dir(output_dir):
        trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                             peft_config=lora_config(lora) if lora else None)
    ConciseProgress("lora" if lora else "sft", PROGRESS_KEYS["sft"]).install(trainer)
    trainer.train()
    model = trainer.model.merge_and_unload() if lora else trainer.model
    return {"model": model, "processor": processor, "log_history": trainer.state.log_history, "trainer": trainer}


def preference_pairs(ds, target: str = "reasoning", seed: int = 0):
    """DPO pairs from multiple-choice items: chosen = the target with the gold letter; rejected = the same
    target with a wrong letter drawn uniformly (seeded) from the item's other options. The reasoning text is
    the same in both, so the preference is about the answer alone (a documented choice)."""
    import random

    rng = random.Random(seed)

    def add(row):
        wrong = rng.choice([chr(65 + i) for i in range(len(row["options"])) if chr(65 + i) != row["answer"]])
        chosen = reasoning_target(row) if target == "reasoning" else row["answer"]
        rejected = chosen.replace(f"<answer>{row['answer']}</answer>", f"<answer>{wrong}</answer>") \
            if target == "reasoning" else wrong
        return {"prompt": conversation(row["question"], row["options"], "reasoning" if target == "reasoning" else "plain"),
                "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}]}

    return ds.map(add, desc="preference pairs").select_columns(["prompt", "chosen", "rejected", "image"])


def run_dpo(model_path: str, ds, *, output_dir: str, lr: float, max_steps: int, beta: float,
            target: str = "reasoning", batch_size: int = 8, seed: int = 0, bf16: bool = False,
            deepspeed: str | None = None, load: dict | None = None) -> dict:
    """Direct preference optimisation with TRL's ``DPOTrainer`` on :func:`preference_pairs`.
    Returns ``{"model", "processor", "log_history", "trainer"}``."""
    from trl import DPOConfig, DPOTrainer

    validate_rows(ds, "dpo train set")
    model, processor = load_model(model_path, **(load or {}))
    ref, _ = load_model(model_path, **(load or {}))
    args = DPOConfig(**_common_args(output_dir, lr=lr, max_steps=max_steps, batch_size=batch_size, seed=seed,
                                    bf16=bf16, deepspeed=deepspeed),
                     beta=beta, loss_type=["sigmoid"], label_smoothing=0.0,  # Rafailov et al.'s DPO loss
                     max_length=None, padding_free=False,
                     precompute_ref_log_probs=False)
    with logging_dir(output_dir):
        trainer = DPOTrainer(model=model, ref_model=ref, args=args,
                             train_dataset=preference_pairs(ds, target, seed), processing_class=processor)
    ConciseProgress("dpo", PROGRESS_KEYS["dpo"]).install(trainer)
    trainer.train()
    return {"model": trainer.model, "processor": processor, "log_history": trainer.state.log_history,
            "trainer": trainer}


def grpo_args(profile: Profile, output_dir: str, tokenizer=None, **extra):
    """TRL ``GRPOConfig`` with every paper setting taken from the profile, none left to TRL's defaults, and the
    reward functions it weights."""
    from trl import GRPOConfig

    return GRPOConfig(**grpo_kwargs(profile, output_dir, **extra)), build_reward_funcs(profile, tokenizer)


def grpo_kwargs(profile: Profile, output_dir: str, **extra) -> dict:
    """The keyword arguments of TRL's ``GRPOConfig`` for ``profile`` (see :func:`grpo_args`)."""
    g = profile.grpo
    names = list(g.reward_weights)
    kwargs = dict(
        output_dir=output_dir,
        learning_rate=g.learning_rate,
        max_steps=g.max_steps,
        per_device_train_batch_size=g.prompts_per_device * g.num_generations,  # TRL counts completions
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=0,
        min_p=None,  # no min-p filtering: the papers sample at the temperature alone (TRL's default today)
        repetition_penalty=1.0,  # none (TRL's default today)
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
        use_bias_correction_kl=False,  # the papers' GRPO (TRL 0.14-0.16): k3 KL unweighted (TRL 1.x weights it)
        reward_weights=[g.reward_weights[n] for n in names],
        logging_steps=g.logging_steps,
        save_steps=g.save_steps,
        save_strategy="steps",
        save_total_limit=g.save_total_limit or None,
        save_only_model=g.save_only_model,
        gradient_checkpointing=g.gradient_checkpointing,
        bf16=g.bf16,
        seed=g.seed,
        data_seed=g.seed,
        lr_scheduler_type=g.lr_scheduler_type,
        warmup_steps=g.warmup_steps,
        weight_decay=g.weight_decay,
        max_grad_norm=g.max_grad_norm,
        report_to=report_to(),
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        disable_tqdm=True,
        log_completions=False,
    )
    kwargs.update(vllm_kwargs(profile))
    kwargs.update(extra)
    return kwargs


def vllm_kwargs(profile: Profile) -> dict:
    """``GRPOConfig``'s rollout-engine settings: vLLM (TRL's colocate or server mode, with the truncated
    importance-sampling correction that :func:`medrl_lib.rl.grpo.policy_loss` applies) where
    :func:`medrl_lib.training.engines.rollout_engine` resolves to it, else the policy's own ``generate``."""
    from medrl_lib.training.engines import rollout_engine

    g = profile.grpo
    if rollout_engine(profile) != "vllm":
        return {"use_vllm": False}
    return dict(use_vllm=True, vllm_mode=g.vllm_mode, vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                vllm_tensor_parallel_size=1,  # one engine per training GPU (colocate), the whole policy on each
                vllm_max_model_length=g.vllm_max_model_length or g.max_prompt_length + g.max_completion_length,
                vllm_importance_sampling_correction=True, vllm_importance_sampling_mode=g.vllm_importance_sampling_mode,
                vllm_importance_sampling_clip_max=g.vllm_importance_sampling_clip_max,
                vllm_enable_sleep_mode=False)


def load_settings(profile: Profile, dtype: str | None = None) -> dict:
    """Keyword arguments of :func:`medrl_lib.models.loading.load_model` for the profile's policies: its dtype (or
    ``dtype``), attention kernel and, for hub models, its pixel limit and the instruct model's chat template."""
    from medrl_lib.models.sources import resolve_source

    m = profile.model
    hub = m.kind == "hub"
    return dict(dtype=dtype or m.dtype, attn_implementation=m.attn_implementation,
                max_pixels=m.max_pixels if hub else None, chat_template_from=resolve_source(m.instruct) if hub else None)


def supervised_load(profile: Profile, distributed: bool) -> dict:
    """How a supervised baseline loads its start model: as GRPO's policy (:func:`load_settings`), in the training
    dtype (float32 master weights in a single process)."""
    return load_settings(profile, training_dtype(profile, distributed))


def last_checkpoint(output_dir: str) -> str | None:
    """The newest complete ``checkpoint-N`` folder in ``output_dir`` (an interrupted run resumes from it), or None.

    Complete: it holds ``trainer_state.json``, the file the Trainer writes last. A job killed while writing a checkpoint
    (preemption, a requeue, a time limit) leaves a folder without it; that folder is skipped, named on stdout, and the
    run resumes from the one before (Transformers' ``get_last_checkpoint`` would pick it and fail to load it).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in (3, 6):
    ...     (d / f"checkpoint-{n}").mkdir()
    >>> _ = (d / "checkpoint-3" / "trainer_state.json").write_text("{}")
    >>> last_checkpoint(str(d)).endswith("checkpoint-3")  # checkpoint-6 was cut off while being written
    [grpo] skipping checkpoint-6: incomplete (no trainer_state.json), a job stopped while writing it
    True
    """
    from transformers.trainer import TRAINER_STATE_NAME
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not os.path.isdir(output_dir):
        return None
    steps = sorted((int(m.group(1)), name) for name in os.listdir(output_dir)
                   if (m := re.fullmatch(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)", name))
                   and os.path.isdir(os.path.join(output_dir, name)))
    for _, name in reversed(steps):
        if os.path.isfile(os.path.join(output_dir, name, TRAINER_STATE_NAME)):
            return os.path.join(output_dir, name)
        print(f"[grpo] skipping {name}: incomplete (no {TRAINER_STATE_NAME}), a job stopped while writing it",
              flush=True)
    return None


def rollout_generation_kwargs(model) -> dict:
    """``GRPOConfig.generation_kwargs`` of a policy: its vision tokens never sampled (a sampled vision token, not only
    TRL's image token, breaks M-RoPE positions in the loss's forward pass). Written for ``generate``; the trainer
    gives vLLM the same in vLLM's terms (:func:`medrl_lib.rl.grpo.rollout_sampling_kwargs`)."""
    from medrl_lib.models.loading import vision_token_ids

    return {"suppress_tokens": vision_token_ids(model)}


def run_grpo(profile: Profile, model_path: str, train_ds, output_dir: str, *, callbacks: Sequence = (),
             trainer_cls=None, **extra) -> dict:
    """Train with GRPO; returns ``{"log_history": [...], "model": model, "processor": processor}``.

    The trainer is :class:`medrl_lib.rl.grpo.MedrlGRPOTrainer` (TRL's, with our advantages and loss) unless
    ``trainer_cls`` names another (e.g. ``trl.GRPOTrainer`` for the stock loss).
    """
    from medrl_lib.rl.grpo import MedrlGRPOTrainer

    validate_rows(train_ds, "grpo train set")
    distributed = bool(extra.get("deepspeed"))
    model, processor = load_policy(profile, model_path, dtype=training_dtype(profile, distributed))
    check_prompt_lengths(train_ds, processor, profile.grpo.max_prompt_length, "grpo train set")
    extra.setdefault("generation_kwargs", rollout_generation_kwargs(model))
    args, reward_funcs = grpo_args(profile, output_dir, processor.tokenizer, **extra)
    data = with_prompts(train_ds)
    if profile.grpo.beta > 0 and not getattr(model.config, "_name_or_path", ""):
        model.config._name_or_path = model_path  # TRL rebuilds the reference model from this path
    cls = trainer_cls or MedrlGRPOTrainer
    with logging_dir(output_dir):
        trainer = cls(model=model, reward_funcs=reward_funcs, args=args, train_dataset=data,
                      processing_class=processor, callbacks=list(callbacks))
    ConciseProgress("grpo", PROGRESS_KEYS["grpo"]).install(trainer)
    last = last_checkpoint(output_dir)
    if last and profile.grpo.save_only_model:
        print(f"[grpo] {last} holds the weights only (grpo.save_only_model): the run starts again from step 0",
              flush=True)
        last = None
    elif last:  # weights, optimizer and scheduler state, RNG states, step and log history
        print(f"[grpo] resuming from {last}", flush=True)
    trainer.train(resume_from_checkpoint=last)
    return {"log_history": trainer.state.log_history, "model": trainer.model, "processor": processor,
            "trainer": trainer, "args": asdict(profile.grpo)}


def trains_in_bf16(profile: Profile, method: str) -> bool:
    """Whether ``method`` trains in bfloat16 mixed precision: ``grpo.bf16`` for GRPO, ``sft.bf16`` for the
    supervised baselines."""
    return profile.grpo.bf16 if method == "grpo" else profile.sft.bf16


def fit(method: str, profile: Profile, model_path: str, train, output_dir: str, *,
        deepspeed: str | None = None) -> dict:
    """Train ``method`` (one of :data:`METHODS`) from ``model_path`` on the items ``train``, checkpoints under
    ``output_dir``: GRPO with the ``grpo`` settings (:func:`run_grpo`, resuming from a checkpoint there); full SFT,
    LoRA or DPO with the ``sft`` settings, its seed and precision included, for :func:`supervised_steps` steps.
    ``deepspeed``: the DeepSpeed config when this is one process of a multi-process run
    (:mod:`medrl_lib.training.launch`). Returns ``{"model", "processor", "log_history", "trainer"}``."""
    if method == "grpo":
        return run_grpo(profile, model_path, train, output_dir, **({"deepspeed": deepspeed} if deepspeed else {}))
    if method not in SUPERVISED_METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    s = profile.sft
    common = dict(output_dir=output_dir, max_steps=supervised_steps(profile, method), target=s.target,
                  batch_size=s.per_device_train_batch_size, seed=s.seed, bf16=s.bf16, deepspeed=deepspeed,
                  load=supervised_load(profile, distributed=bool(deepspeed)))
    if method == "dpo":
        return run_dpo(model_path, train, lr=s.dpo_learning_rate, beta=s.dpo_beta, **common)
    lora = method == "lora"
    return run_sft(model_path, train, lr=s.lora_learning_rate if lora else s.learning_rate, lora=s if lora else None,
                   **common)
