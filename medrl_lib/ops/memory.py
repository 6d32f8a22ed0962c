"""Peak memory of one GRPO training process, term by term, before any GPU hour (``medrl check``; the book's Methods
page, "Memory plan").

One rank of a GRPO run holds, at the peak of its backward pass:

* **model states** under ZeRO-2 (:func:`model_states_per_process`): bf16 weights of the policy
  and of the reference model whole, fp32 master weights, Adam moments and gradients partitioned over the ranks;
* **the rollout engine's share** of the device: TRL's colocated vLLM reserves ``vllm_gpu_memory_utilization`` of it
  (weights and key-value cache) for the whole run, sleep mode being off;
* **activations** of one micro-batch (``prompts_per_device x num_generations`` completions): for each language-model
  layer and token, and for each vision block and image patch, the bytes autograd saves for the backward pass.
  They are **measured** (:func:`saved_bytes_per_unit`) on one layer of the policy's architecture in bf16, as the
  difference between two lengths (so that the layer's own weights cancel). Each completion carries its prompt's
  image through the vision tower (TRL repeats the prompt ``num_generations`` times). With gradient checkpointing
  only each layer's input is kept, plus one layer's activations while it is recomputed;
* **logits** of the completion positions: four ``batch x completion x vocabulary`` bf16 tensors (the logits, their
  temperature-scaled copy, the log-softmax kept for the backward pass, and its gradient);
* **runtime**: the CUDA context and allocator slack, :data:`RUNTIME_GIB` per process.

Every length is the profile's limit: prompts at ``max_prompt_length`` (their image at the pixel cap), completions
at ``max_completion_length``. A plan that fits at the limits fits every batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from medrl_lib.config import Profile

GIB = 1024 ** 3
#: CUDA context, NCCL buffers and allocator fragmentation per process, in GiB (a documented allowance).
RUNTIME_GIB = 3.0
#: bf16 copies of the completion logits held at the peak (logits, /temperature, log-softmax, their gradient).
LOGIT_COPIES = 4
#: bytes of one bf16 value
BF16 = 2
#: Bytes per parameter of the weights in each dtype.
WEIGHT_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def saved_bytes(fn) -> int:
    """Bytes of the distinct tensor storages autograd saves for the backward pass while ``fn()`` runs."""
    import torch

    seen: dict[tuple[int, int], int] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


@functools.lru_cache(maxsize=None)
def saved_bytes_per_unit(text: tuple, vision: tuple, lengths: tuple[int, int] = (128, 256)) -> tuple[float, float]:
    """``(bytes per token per language-model layer, bytes per patch per vision block)`` that autograd saves in bf16
    for Qwen2-VL layers of the given text and vision configurations (``tuple(sorted(dict.items()))``), measured on
    the CPU at two lengths and differenced, so that the layer's weights (saved too) cancel. sdpa attention."""
    import torch
    from transformers import Qwen2VLConfig
    from transformers.models.qwen2_vl import modeling_qwen2_vl as qwen

    config = Qwen2VLConfig(text_config=_thawed(text), vision_config=_thawed(vision))
    for sub in (config.text_config, config.vision_config):
        sub._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cpu"):
        layer = qwen.Qwen2VLDecoderLayer(config.text_config, 0).to(torch.bfloat16)
        rotary = qwen.Qwen2VLRotaryEmbedding(config=config.text_config)
        block = qwen.Qwen2VLVisionBlock(config.vision_config).to(torch.bfloat16)
    head = config.vision_config.embed_dim // config.vision_config.num_heads

    def text_bytes(n: int) -> int:
        x = torch.randn(1, n, config.text_config.hidden_size, dtype=torch.bfloat16, requires_grad=True)
        positions = torch.arange(n).view(1, 1, -1).expand(3, 1, -1)
        cos_sin = rotary(x, positions)
        return saved_bytes(lambda: layer(x, position_embeddings=cos_sin, attention_mask=None, position_ids=positions))

    def vision_bytes(n: int) -> int:
        x = torch.randn(n, config.vision_config.embed_dim, dtype=torch.bfloat16, requires_grad=True)
        angles = torch.randn(n, head // 2)
        emb = torch.cat([angles, angles], dim=-1)
        return saved_bytes(lambda: block(x, cu_seqlens=torch.tensor([0, n], dtype=torch.int32),
                                         position_embeddings=(emb.cos(), emb.sin())))

    short, long = lengths
    per_token = (text_bytes(long) - text_bytes(short)) / (long - short)
    per_patch = (vision_bytes(long) - vision_bytes(short)) / (long - short)
    return per_token, per_patch


@dataclass
class MemoryPlan:
    """Peak bytes of one training process, by term, against the device's memory."""

    terms: dict[str, int]
    device_bytes: int | None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def peak(self) -> int:
        return sum(self.terms.values())

    @property
    def room(self) -> int | None:
        """Bytes left on the device at the peak (negative: it does not fit); None without a device."""
        return None if self.device_bytes is None else self.device_bytes - self.peak

    @property
    def fits(self) -> bool:
        return self.room is None or self.room >= 0

    def lines(self) -> list[str]:
        out = [f"{name:<28} {value / GIB:7.1f} GiB  {self.notes.get(name, '')}".rstrip()
               for name, value in self.terms.items()]
        out.append(f"{'peak per process':<28} {self.peak / GIB:7.1f} GiB")
        if self.device_bytes is not None:
            out.append(f"{'device':<28} {self.device_bytes / GIB:7.1f} GiB  room {self.room / GIB:+.1f} GiB")
        return out


def shapes_of(config) -> dict:
    """The text and vision configurations (dicts) of a Qwen2-VL, Qwen2.5-VL or Qwen3-VL config, in Qwen2-VL's terms
    as :func:`grpo_memory_plan` reads them. A later family names the vision width ``hidden_size`` (Qwen2-VL:
    ``embed_dim``, its ``hidden_size`` being the merger's output) and gives its MLP size: the plan measures a Qwen2-VL
    block of that width, heads and MLP size (its ratio to the width rounded to a whole number, as Qwen2-VL's config
    takes it: Qwen2.5-VL's 2.67 counts as 3, a little more memory) (:func:`saved_bytes_per_unit`), at the family's own
    patch size.

    >>> from transformers import Qwen3VLConfig
    >>> v = shapes_of(Qwen3VLConfig(vision_config=dict(hidden_size=1024, intermediate_size=4096, out_hidden_size=2048,
    ...                                                num_heads=16, depth=24, patch_size=16)))["vision"]
    >>> v["embed_dim"], v["hidden_size"], v["mlp_ratio"], v["patch_size"], v["depth"]
    (1024, 2048, 4, 16, 24)
    """
    text, vision = config.text_config.to_dict(), dict(config.vision_config.to_dict())
    if "embed_dim" not in vision:  # Qwen2.5-VL, Qwen3-VL
        vision.update(embed_dim=vision["hidden_size"], hidden_size=vision.get("out_hidden_size", vision["hidden_size"]),
                      mlp_ratio=max(1, round(vision["intermediate_size"] / vision["hidden_size"])))
    keep_text = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "rms_norm_eps", "rope_parameters", "max_position_embeddings")
    keep_vision = ("depth", "embed_dim", "hidden_size", "num_heads", "mlp_ratio", "patch_size", "spatial_merge_size",
                   "temporal_patch_size")
    return {"text": {k: text[k] for k in keep_text if k in text}, "vision": {k: vision[k] for k in keep_vision if k in vision}}


def model_states_per_process(profile: Profile, parameters: int) -> int:
    """Bytes of model states on one training process under ZeRO-2: bf16 weights of the policy and of the frozen
    reference model (KL, beta > 0) whole on every process, fp32 master weights and Adam moments (12 bytes) and
    gradients partitioned over the processes. Activations and generation come on top."""
    n = profile.num_processes
    w = WEIGHT_BYTES[profile.model.dtype]
    ref = w if profile.grpo.beta > 0 else 0
    if n == 1:  # one process keeps float32 weights (no master copy elsewhere) and whole gradients
        return parameters * (4 + ref + 8 + 4)
    return int(parameters * (w + ref) + parameters * (12 + w) / n)


def _frozen(d: dict) -> tuple:
    return tuple(sorted((k, _frozen(v) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else v)
                        for k, v in d.items()))


def _thawed(t: tuple) -> dict:
    return {k: _thawed(v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else
            list(v) if isinstance(v, tuple) else v for k, v in t}


def grpo_memory_plan(profile: Profile, parameters: int, shapes: dict, device_bytes: int | None, *,
                     rollouts: str | None = None) -> MemoryPlan:
    """The :class:`MemoryPlan` of one GRPO training process of ``profile`` (``parameters`` and ``shapes``, see
    :func:`shapes_of`: the policy's) on a device of ``device_bytes`` (None: no device). ``rollouts``: 'vllm' or 'hf'
    (default: what the profile resolves to here, :func:`medrl_lib.training.engines.rollout_engine`, or 'vllm' where the
    profile asks 'auto', as on the GPU machines it is planned for)."""
    from medrl_lib.training.engines import rollout_engine

    g = profile.grpo
    text, vision = shapes["text"], shapes["vision"]
    per_token, per_patch = saved_bytes_per_unit(_frozen(text), _frozen(vision))
    if rollouts is None:
        rollouts = "vllm" if g.rollouts == "auto" else rollout_engine(profile)
    batch = g.prompts_per_device * g.num_generations                        # completions per micro-batch
    tokens = batch * (g.max_prompt_length + g.max_completion_length)        # padded sequence tokens
    patches = (profile.model.max_pixels or 0) // (vision["patch_size"] ** 2)  # patches of one image at the cap
    images = batch                                                           # TRL repeats each prompt's image
    layers, depth = text["num_hidden_layers"], vision["depth"]
    if g.gradient_checkpointing:
        lm = tokens * layers * text["hidden_size"] * BF16 + tokens * per_token
        tower = images * patches * depth * vision["embed_dim"] * BF16 + images * patches * per_patch
    else:
        lm = tokens * layers * per_token
        tower = images * patches * depth * per_patch
    terms = {"model states (ZeRO-2)": model_states_per_process(profile, parameters),
             "rollout engine": int(g.vllm_gpu_memory_utilization * device_bytes)
             if rollouts == "vllm" and g.vllm_mode == "colocate" and device_bytes else 0,
             "activations: language model": int(lm),
             "activations: vision tower": int(tower),
             "logits": LOGIT_COPIES * batch * g.max_completion_length * text["vocab_size"] * BF16,
             "runtime": int(RUNTIME_GIB * GIB)}
    checkpointing = "checkpointed" if g.gradient_checkpointing else "all kept"
    notes = {"model states (ZeRO-2)": f"{profile.num_processes} process(es), {parameters / 1e9:.2f}B parameters",
             "rollout engine": (f"{g.vllm_gpu_memory_utilization:.2f} of the device (colocated vLLM, sleep mode off)"
                                if terms["rollout engine"] else f"none ({rollouts} rollouts)"),
             "activations: language model": f"{batch} x {g.max_prompt_length + g.max_completion_length} tokens x "
                                            f"{layers} layers, {per_token / 1024:.0f} KiB/token/layer, {checkpointing}",
             "activations: vision tower": f"{images} images x {patches} patches x {depth} blocks, "
                                          f"{per_patch / 1024:.0f} KiB/patch/block, {checkpointing}",
             "logits": f"{LOGIT_COPIES} bf16 copies of {batch} x {g.max_completion_length} x {text['vocab_size']}",
             "runtime": f"CUDA context and allocator slack ({RUNTIME_GIB:g} GiB)"}
    return MemoryPlan(terms, device_bytes, notes)
