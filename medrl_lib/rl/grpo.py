"""The GRPO and Dr.GRPO objectives in a few readable lines, and the TRL trainer that uses them.

Shao et al. 2024 (GRPO) and Liu et al. 2025 (Dr.GRPO); the book's Methods page. Per group of G completions of one prompt,

* GRPO (Shao et al. 2024): ``A_i = (r_i - mean(r)) / (std(r) + 1e-4)`` (Bessel-corrected std, as TRL), a
  per-token clipped ratio term plus ``beta`` times the k3 KL estimate to the reference policy, averaged over
  each sequence's tokens and then over sequences;
* Dr.GRPO (Liu et al. 2025): ``A_i = r_i - mean(r)`` and the token sum divided by a constant,
  batch x max_completion_length, instead of each sequence's length.

>>> import torch
>>> group_advantages(torch.tensor([1.0, 0.0, 1.0, 0.0]), 2, "none").tolist()
[0.5, -0.5, 0.5, -0.5]
>>> logps = torch.zeros(2, 3); mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
>>> policy_loss(logps, logps, None, torch.tensor([1.0, -1.0]), mask, loss_type="grpo", beta=0.0,
...             epsilon=0.2, max_completion_length=3)[0].item()
0.0
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable

import torch

from medrl_lib.rl import vllm_inputs

#: Advantage scales: how the group-centred rewards are divided.
ADVANTAGE_SCALES = ("group", "none")


def group_advantages(rewards: torch.Tensor, num_generations: int, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Group-relative advantages of ``rewards`` (B,), laid out as consecutive groups of ``num_generations``."""
    if scale not in ADVANTAGE_SCALES:
        raise ValueError(f"scale must be one of {ADVANTAGE_SCALES}, got {scale!r}")
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {num_generations}")
    grouped = rewards.view(-1, num_generations)                       # (B/G, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)             # (B/G, G)
    if scale == "group":
        centred = centred / (grouped.std(dim=1, keepdim=True) + eps)  # (B/G, G), std with Bessel's correction
    return centred.reshape(-1)                                        # (B,)


def _sequence_mean(per_token: torch.Tensor, mask: torch.Tensor, max_completion_length: int) -> torch.Tensor:
    """GRPO: mean over each sequence's own tokens, then over sequences."""
    return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


def _constant_length(per_token: torch.Tensor, mask: torch.Tensor, max_completion_length: int) -> torch.Tensor:
    """Dr.GRPO: token sum divided by batch x max_completion_length (no length bias)."""
    return (per_token * mask).sum() / (per_token.size(0) * max_completion_length)


#: The named normaliser of each loss type: how per-token losses become one number.
NORMALISERS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "grpo": _sequence_mean,
    "dr_grpo": _constant_length,
}


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
                advantages: torch.Tensor, completion_mask: torch.Tensor, *, loss_type: str, beta: float,
                epsilon: float, max_completion_length: int,
                importance_sampling_ratio: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO objective plus ``beta`` x k3 KL, normalised by ``loss_type``; returns (loss, stats).

    ``logps``, ``old_logps``, ``ref_logps`` and ``completion_mask`` are (B, T) per-token values over the
    completion; ``advantages`` is (B,). ``ref_logps`` may be None when ``beta`` is 0. ``stats`` holds the
    per-token KL and the clipping indicators, for logging.

    ``importance_sampling_ratio`` (B, T), or (B, 1) per sequence, corrects for completions sampled by another
    engine than the one that scores them (vLLM rollouts): the truncated ratio of the trainer's to the engine's
    probabilities multiplies the clipped term before the KL term is added, as TRL does (Methods, Losses).
    """
    if loss_type not in NORMALISERS:
        raise ValueError(f"loss_type must be one of {sorted(NORMALISERS)}, got {loss_type!r}")
    mask = completion_mask.to(logps.dtype)                                   # (B, T)
    adv = advantages.unsqueeze(1)                                            # (B, 1)
    ratio = torch.exp(logps - old_logps)                                     # (B, T)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)                   # (B, T)
    per_token = -torch.min(ratio * adv, clipped * adv)                       # (B, T)
    stats = {"low_clipped": (ratio < 1 - epsilon) & (adv < 0),               # (B, T)
             "high_clipped": (ratio > 1 + epsilon) & (adv > 0)}              # (B, T)
    if importance_sampling_ratio is not None:
        per_token = per_token * importance_sampling_ratio                    # (B, T), rollout-engine correction
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("ref_logps is required when beta != 0")
        kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1          # (B, T), k3 estimator
        per_token = per_token + beta * kl                                    # (B, T)
        stats["kl"] = kl
    loss = NORMALISERS[loss_type](per_token, mask, max_completion_length)    # ()
    return loss, stats


def rollout_sampling_kwargs(args, eos_token_ids) -> dict:
    """The keyword arguments of ``vllm.SamplingParams`` for each rollout of ``MedrlGRPOTrainer`` with ``args`` (a
    ``GRPOConfig`` with ``use_vllm``) and a policy stopping on ``eos_token_ids``: TRL 1.16's colocated sampling
    settings (``trl/generation/vllm_generation.py``: one completion per prompt copy, logprobs of the sampled token),
    then ``args.generation_kwargs`` as vLLM takes them (:func:`medrl_lib.rl.vllm_inputs.sampling_extras`)."""
    out = {"n": 1, "repetition_penalty": args.repetition_penalty, "temperature": args.temperature,
           "top_p": args.top_p, "top_k": args.top_k, "min_p": args.min_p or 0.0,
           "max_tokens": args.max_completion_length, "logprobs": 0}
    out.update(vllm_inputs.sampling_extras(args.generation_kwargs, eos_token_ids))
    return out


@functools.lru_cache(maxsize=None)
def _vllm_generation_class():
    """TRL's colocated vLLM engine (``VLLMGeneration``) with three changes, used by ``MedrlGRPOTrainer``:

    * the engine starts with the multimodal settings of :func:`medrl_lib.rl.vllm_inputs.engine_kwargs` (TRL builds
      ``vllm.LLM(model=name_or_path, ...)`` with none) and, on vLLM's CPU build, in eager mode (compilation costs
      minutes on a CPU and gains nothing there);
    * on vLLM's CPU build the weights are pushed with vLLM's in-place ``reload_weights``: its CPU kernels repack
      every linear layer's weight after loading and drop the original, so TRL's per-parameter ``load_weights``
      finds empty parameters. On GPUs TRL's own push is kept;
    * after each push the engine's encoder cache is emptied: vLLM keeps vision features by image hash, and TRL 1.16
      does not reset them, so an image seen again would be answered with features of older weights.
    """
    from trl.generation import vllm_generation

    class MedrlVLLMGeneration(vllm_generation.VLLMGeneration):
        engine_extra: dict = {}

        def _init_vllm(self):
            factory = vllm_generation.LLM
            vllm_generation.LLM = functools.partial(factory, **self.engine_extra)
            try:
                super()._init_vllm()
            finally:
                vllm_generation.LLM = factory

        def sync_weights(self):
            if self.mode != "colocate":
                return super().sync_weights()
            if vllm_inputs.vllm_is_cpu_build():
                runner = self.llm.llm_engine.model_executor.driver_worker.model_runner
                runner.reload_weights(weights_iterator=self._iter_named_params(), is_checkpoint_format=True)
                self.llm.reset_mm_cache()  # the worker's multimodal cache was cleared: the engine's must follow
                self.llm.reset_prefix_cache()
            else:
                super().sync_weights()
            # vision features computed with the old weights must not be reused (vLLM keeps them by image hash)
            self.llm.llm_engine.reset_encoder_cache()

    return MedrlVLLMGeneration


@contextlib.contextmanager
def _vllm_engine_settings(processing_class, use_vllm: bool):
    """While TRL's trainer is built, it builds :func:`_vllm_generation_class`'s engine, with the multimodal
    settings of ``processing_class``'s image processor."""
    image_processor = getattr(processing_class, "image_processor", None)
    if not use_vllm or image_processor is None:
        yield
        return
    from trl.trainer import grpo_trainer

    cls = type("MedrlVLLMGeneration", (_vllm_generation_class(),), {})
    cls.engine_extra = vllm_inputs.engine_kwargs(image_processor)
    if vllm_inputs.vllm_is_cpu_build():
        cls.engine_extra["enforce_eager"] = True
    original, grpo_trainer.VLLMGeneration = grpo_trainer.VLLMGeneration, cls
    try:
        yield
    finally:
        grpo_trainer.VLLMGeneration = original


def _grpo_trainer_class():
    """``MedrlGRPOTrainer``: TRL's GRPOTrainer with advantages and loss from this module (built lazily)."""
    from trl import GRPOTrainer

    class MedrlGRPOTrainer(GRPOTrainer):
        """TRL's ``GRPOTrainer`` whose advantages come from :func:`group_advantages` and whose loss is
        :func:`policy_loss`; generation, reward calls, reference model, logging and checkpoints are TRL's."""

        _SUPPORTED = {"loss_type": ("grpo", "dr_grpo"), "importance_sampling_level": ("token",),
                      "multi_objective_aggregation": ("sum_then_normalize",), "scale_rewards": ADVANTAGE_SCALES}

        def __init__(self, *args, **kwargs):
            config = kwargs.get("args", args[2] if len(args) > 2 else None)
            with _vllm_engine_settings(kwargs.get("processing_class"), bool(getattr(config, "use_vllm", False))):
                super().__init__(*args, **kwargs)
            if self.use_vllm:  # vLLM's own names for suppress_tokens, and every EOS id the HF path stops on
                self.vllm_generation.generation_kwargs = vllm_inputs.sampling_extras(
                    self.vllm_generation.generation_kwargs, self.eos_token_ids)
            for name, allowed in self._SUPPORTED.items():
                if getattr(self.args, name) not in allowed:
                    raise ValueError(f"MedrlGRPOTrainer supports {name} in {allowed}, got {getattr(self.args, name)!r}")
            if self.args.epsilon_high != self.args.epsilon:
                raise ValueError("MedrlGRPOTrainer clips symmetrically: set epsilon_high equal to epsilon")
            if self.top_entropy_quantile < 1.0 or self.off_policy_mask_threshold is not None:
                raise ValueError("MedrlGRPOTrainer does not implement entropy masks or OPSM")
            if self.use_vllm and self.args.use_bias_correction_kl:
                raise ValueError("MedrlGRPOTrainer does not weight the KL term by the importance ratio: "
                                 "set use_bias_correction_kl=False")
            if self.use_vllm and self.loss_type not in ("grpo", "dr_grpo"):
                raise ValueError(f"vLLM rollouts need loss_type grpo or dr_grpo, got {self.loss_type!r}")

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            """Restore the weights of a checkpoint strictly. Transformers 5.23's Trainer loads them with a
            non-strict ``load_state_dict`` on raw keys, but Qwen2-VL checkpoints are saved in the hub layout
            (``model.layers.*``, ``model.visual.*``) while the module names them ``model.language_model.*``:
            a resumed run would silently restart from the start weights. ``from_pretrained`` maps the keys."""
            model = model if model is not None else self.model
            if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config"):
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            restored = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
            model.load_state_dict(restored.state_dict(), strict=True)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
            """vLLM gets each prompt with one placeholder per image and the image at the policy's size
            (:mod:`medrl_lib.rl.vllm_inputs`), so that it expands it to the tokens the policy is trained on."""
            if self.use_vllm:
                processor = self.processing_class
                prompt_ids = [vllm_inputs.collapse_image_tokens(ids, processor.image_token_id) for ids in prompt_ids]
                if images is not None:
                    images = [None if imgs is None else [vllm_inputs.fit_image(im, processor.image_processor)
                                                         for im in imgs] for imgs in images]
            start = time.perf_counter()
            out = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                has_tool_images)
            mode = "train" if self.model.training else "eval"
            self._metrics[mode]["timing/rollouts_s"].append(time.perf_counter() - start)  # this rank's sampling
            return out

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._last_rewards_per_func = rewards_per_func  # (B_all, n_funcs), gathered over processes
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            rewards = (self._last_rewards_per_func * self.reward_weights.to(self._last_rewards_per_func.device)
                       ).nansum(dim=1)                                                  # (B_all,)
            mode = "train" if self.model.training else "eval"
            g = self.num_generations if mode == "train" else self.num_generations_eval
            advantages = group_advantages(rewards, g, self.scale_rewards)               # (B_all,)
            local = len(output["advantages"])
            start = self.accelerator.process_index * local
            output["advantages"] = advantages[start:start + local]                      # (B,)
            return output

        def _compute_loss(self, model, inputs):
            completion_ids, mask = inputs["completion_ids"], inputs["completion_mask"]          # (B, T)
            input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)                # (B, P+T)
            attention_mask = torch.cat([inputs["prompt_mask"], mask], dim=1)                    # (B, P+T)
            forward_keys = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask",
                            "image_sizes", "token_type_ids", "mm_token_type_ids")
            logps, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True,
                **{k: inputs.get(k) for k in forward_keys})                                     # (B, T)
            old = inputs.get("old_per_token_logps")
            old = logps.detach() if old is None else old                                        # (B, T)
            correct = self.use_vllm and self.vllm_importance_sampling_correction
            is_ratio = inputs["importance_sampling_ratio"] if correct else None                # (B, T) or (B, 1)
            loss, stats = policy_loss(logps, old, inputs.get("ref_per_token_logps"), inputs["advantages"], mask,
                                      loss_type=self.loss_type, beta=self.beta, epsilon=self.epsilon_low,
                                      max_completion_length=self.max_completion_length,
                                      importance_sampling_ratio=is_ratio)
            mode = "train" if self.model.training else "eval"
            self._log_loss_stats(mode, stats, entropies, mask)
            return loss / (self.current_gradient_accumulation_steps if mode == "train" else 1.0)

        def _log_loss_stats(self, mode, stats, entropies, mask):
            mask = mask.float()

            def mean(x):
                totals = self.accelerator.reduce(torch.stack([(x.float() * mask).sum(), mask.sum()]), reduction="sum")
                return (totals[0] / totals[1].clamp(min=1.0)).item()

            if "kl" in stats:
                self._metrics[mode]["kl"].append(mean(stats["kl"]))
            self._metrics[mode]["entropy"].append(mean(entropies))
            low, high = stats["low_clipped"], stats["high_clipped"]
            self._metrics[mode]["clip_ratio/low_mean"].append(mean(low))
            self._metrics[mode]["clip_ratio/high_mean"].append(mean(high))
            self._metrics[mode]["clip_ratio/region_mean"].append(mean(low | high))

    return MedrlGRPOTrainer


def __getattr__(name: str):
    if name == "MedrlGRPOTrainer":
        cls = _grpo_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
