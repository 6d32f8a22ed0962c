"""One GRPO step of the full-size Qwen2-VL-2B architecture (random weights, medrl_lib.preflight.QWEN2_VL_2B) on one GPU.

Nothing can be downloaded, so the model is built from its published architecture and the inputs are made
directly (token ids, an image of random pixels as patches): the cost of a step does not depend on the weights.
A step is: 8 completions of one prompt sampled with the KV cache (up to 700 new tokens each, end-of-sequence
suppressed so that every completion is full length), the policy's and the reference model's log-probabilities,
the GRPO loss of :mod:`medrl_lib.grpo`, backward and an AdamW update. It reports peak GPU memory and seconds per
step with and without gradient checkpointing, and generation tokens per second against the memory-bandwidth
bound (every decoding step reads all weights once).

    python benchmarks/gpu_grpo_step.py                       # on a GPU: the paper's settings, bf16
    python benchmarks/gpu_grpo_step.py --scale tiny          # anywhere: a scaled-down check of the same code
    python benchmarks/gpu_grpo_step.py --vllm --record       # also vLLM's generation; figures into the estimate

``--vllm`` times the generation of the same completions (G of ``--new-tokens`` tokens, end-of-sequence ignored,
from a prompt of the same length) with vLLM offline (``vllm.LLM``) on a saved random-weight model: the language
model of the architecture (a ``Qwen2ForCausalLM`` of the same text config; decoding never runs the vision tower, and
with text positions M-RoPE is plain RoPE), prompted with token ids (``skip_tokenizer_init``), the image's tokens
given as text tokens of the same count. ``--record`` writes the measured figures (generation tokens/s of HF
generate and, with ``--vllm``, of vLLM; the update's tokens/s; with the step seconds, peak memory and GPU name
beside them) into ``medrl_lib/data/throughput.json`` through :func:`medrl_lib.estimate.record_throughput`, where
``medrl estimate`` reads them in place of the defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time

import torch

#: Published memory bandwidth (bytes/s) of the GPUs this study names, for the generation bound.
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def qwen2vl_2b_config(scale: str):
    """Qwen2-VL-2B's published architecture, or a tiny one of the same shape for CPU checks."""
    from transformers import Qwen2VLConfig

    if scale == "full":
        from medrl_lib.preflight import qwen2_vl_2b_config

        return qwen2_vl_2b_config()
    text = {"vocab_size": 1024, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
            "max_position_embeddings": 4096}
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 4, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    v = text["vocab_size"]
    ids = {"image_token_id": v - 3, "video_token_id": v - 4, "vision_start_token_id": v - 2,
           "vision_end_token_id": v - 1}
    return Qwen2VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)


def make_inputs(config, image_side: int, prompt_tokens: int, device):
    """One prompt: ``prompt_tokens`` random text tokens around an ``image_side``-pixel square image."""
    patch, merge, temporal = 14, 2, 2
    grid = image_side // patch
    n_image_tokens = grid * grid // (merge * merge)
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, config.text_config.vocab_size - 8, (prompt_tokens,), generator=g)
    ids = torch.cat([text[:8], torch.tensor([config.vision_start_token_id]),
                     torch.full((n_image_tokens,), config.image_token_id),
                     torch.tensor([config.vision_end_token_id]), text[8:]]).unsqueeze(0)
    pixels = torch.randn(grid * grid, 3 * temporal * patch * patch, generator=g)
    mm = (ids == config.image_token_id).long()  # 1 on image tokens: M-RoPE positions
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "mm_token_type_ids": mm.to(device),
            "pixel_values": pixels.to(device), "image_grid_thw": torch.tensor([[1, grid, grid]]).to(device)}


def per_token_logps(model, inputs, completion, n):
    """Log-probabilities of the completion tokens under ``model`` (B = n copies of the prompt)."""
    ids = torch.cat([inputs["input_ids"].expand(n, -1), completion], dim=1)                  # (B, P+T)
    mm = torch.cat([inputs["mm_token_type_ids"].expand(n, -1), torch.zeros_like(completion)], dim=1)  # (B, P+T)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=mm,
                pixel_values=inputs["pixel_values"].repeat(n, 1),
                image_grid_thw=inputs["image_grid_thw"].repeat(n, 1), logits_to_keep=completion.shape[1] + 1)
    logits = out.logits[:, :-1].float()                                                       # (B, T, V)
    return torch.gather(logits.log_softmax(-1), 2, completion.unsqueeze(-1)).squeeze(-1)       # (B, T)


def grpo_step(policy, ref, optimizer, inputs, *, n: int, new_tokens: int) -> dict:
    """One timed GRPO step; returns seconds of generation and of the update, and generated tokens."""
    from medrl_lib.grpo import group_advantages, policy_loss

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    checkpointing = policy.is_gradient_checkpointing
    if checkpointing:  # as TRL does: generation keeps its KV cache, only the update recomputes activations
        policy.gradient_checkpointing_disable()
    policy.eval()
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = policy.generate(**{k: (v.expand(n, -1) if k in ("input_ids", "attention_mask", "mm_token_type_ids") else v.repeat(n, 1))
                                 for k, v in inputs.items()},
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, temperature=1.0,
                              top_k=0, use_cache=True, pad_token_id=0,
                              suppress_tokens=[policy.config.image_token_id, policy.config.video_token_id,
                                               policy.config.vision_start_token_id, policy.config.vision_end_token_id])
    sync()
    t_gen = time.perf_counter() - t0
    if checkpointing:
        policy.gradient_checkpointing_enable()
    completion = out[:, inputs["input_ids"].shape[1]:]                                         # (B, T)
    rewards = torch.rand(n, device=completion.device)                                          # (B,) any rewards
    advantages = group_advantages(rewards, n, "group")                                        # (B,)
    policy.train()
    t1 = time.perf_counter()
    with torch.no_grad():
        ref_logps = per_token_logps(ref, inputs, completion, n)                                # (B, T)
    logps = per_token_logps(policy, inputs, completion, n)                                     # (B, T)
    loss, _ = policy_loss(logps, logps.detach(), ref_logps, advantages, torch.ones_like(logps),
                          loss_type="grpo", beta=0.04, epsilon=0.2, max_completion_length=new_tokens)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    return {"generate_s": t_gen, "update_s": time.perf_counter() - t1, "tokens": completion.numel()}


def vllm_generation(config, prompt_len: int, n: int, new_tokens: int, memory: float) -> dict:
    """Seconds and tokens/s of vLLM generating ``n`` completions of ``new_tokens`` tokens from one ``prompt_len``-token
    prompt, on the language model of ``config`` (random bf16 weights saved to a temporary folder)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from vllm import LLM, SamplingParams

    t = config.text_config.to_dict()
    text = Qwen2Config(**{k: t[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                            "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                                            "tie_word_embeddings", "max_position_embeddings")},
                       rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, bos_token_id=0,
                       eos_token_id=1)
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        Qwen2ForCausalLM(text).to(dtype=torch.bfloat16).save_pretrained(folder)
        llm = LLM(model=folder, skip_tokenizer_init=True, dtype="bfloat16", seed=0, gpu_memory_utilization=memory,
                  max_model_len=prompt_len + new_tokens + 16)
        ids = torch.randint(2, text.vocab_size - 8, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
        params = SamplingParams(n=n, max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True, temperature=1.0,
                                detokenize=False, seed=0)
        llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)  # warm-up
        t0 = time.perf_counter()
        out = llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        seconds = time.perf_counter() - t0
        tokens = sum(len(o.token_ids) for o in out[0].outputs)
        del llm
    return {"generate_s": seconds, "tokens": tokens, "generated_tokens_per_s": tokens / seconds}


def record(results: dict, path: str | None) -> list[str]:
    """Write the measured figures of ``results`` into the throughput file (default: the package's); returns what was
    written, one line each."""
    from medrl_lib.estimate import gpu_key, record_throughput

    row = results["runs"]["no checkpointing"]
    gpu = gpu_key(results["device"])
    g, t, p = results["generations"], results["new_tokens"], results["prompt_len"]
    what = (f"{results['device']}; {g} completions of {t} tokens of one {p}-token prompt, all of full length, "
            f"{results['dtype'].replace('torch.', '')}, random weights")
    source = f"measured by benchmarks/gpu_grpo_step.py on {datetime.date.today().isoformat()} ({what})"
    extra = {"step_seconds": row["seconds_per_step"], "peak_memory_GiB": row["peak_memory_GiB"],
             "device": results["device"]}
    written = [("hf", "generation", row["generated_tokens_per_s"], "completion tokens/s per GPU (GRPO rollouts)",
                f"{source}: HF generate"),
               ("train", "grpo", g * (p + t) / row["update_s"],
                "tokens/s per GPU (prompt + completion: policy forward and backward, reference forward)",
                f"{source}: the update (reference and policy log-probabilities, backward, AdamW) on one GPU")]
    if "vllm" in results:
        written.append(("vllm", "generation", results["vllm"]["generated_tokens_per_s"],
                        "completion tokens/s per GPU (GRPO rollouts, colocate)",
                        f"{source}: vLLM offline on the language model, prompted with token ids"))
    lines = []
    for engine, figure, value, unit, src in written:
        record_throughput(gpu, engine, figure, value, unit, src, path=path, **extra)
        lines.append(f"recorded {gpu} {engine} {figure}: {value:,.1f} {unit}")
    return lines


def main() -> None:
    from transformers import Qwen2VLForConditionalGeneration

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=["full", "tiny"], default="full" if torch.cuda.is_available() else "tiny")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=None, help="default: 700 (full), 16 (tiny)")
    ap.add_argument("--image-side", type=int, default=448)
    ap.add_argument("--prompt-tokens", type=int, default=100)
    ap.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--vllm", action="store_true", help="also time the same generation with vLLM offline")
    ap.add_argument("--vllm-memory", type=float, default=0.5, help="vLLM's gpu_memory_utilization (default 0.5)")
    ap.add_argument("--record", action="store_true", help="write the measured figures into the throughput file")
    ap.add_argument("--throughput-file", help="the file --record writes (default: medrl_lib/data/throughput.json; "
                    "required with --scale tiny, whose figures are not the 2B model's)")
    a = ap.parse_args()
    if a.vllm:
        try:
            import vllm  # noqa: F401
        except ImportError:
            sys.exit("gpu_grpo_step.py: --vllm needs the vllm package, which is not installed here "
                     "(pip install -e .[vllm], on a machine with a CUDA GPU)")
    if a.record and a.scale != "full" and not a.throughput_file:
        sys.exit("gpu_grpo_step.py: --record with --scale tiny needs --throughput-file: the package's figures are "
                 "Qwen2-VL-2B's")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    new_tokens = a.new_tokens or (700 if a.scale == "full" else 16)
    config = qwen2vl_2b_config(a.scale)
    results = {"scale": a.scale, "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
               "dtype": str(dtype), "generations": a.generations, "new_tokens": new_tokens, "runs": {}}
    for checkpointing in (False, True):
        torch.manual_seed(0)
        policy = Qwen2VLForConditionalGeneration(config).to(device=device, dtype=dtype)
        ref = Qwen2VLForConditionalGeneration(config).to(device=device, dtype=dtype).eval()
        ref.load_state_dict(policy.state_dict())
        if checkpointing:
            policy.gradient_checkpointing_enable()
        params = sum(p.numel() for p in policy.parameters())
        optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
        inputs = make_inputs(config, a.image_side, a.prompt_tokens, device)
        results["prompt_len"] = inputs["input_ids"].shape[1]
        grpo_step(policy, ref, optimizer, inputs, n=a.generations, new_tokens=new_tokens)  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        steps = [grpo_step(policy, ref, optimizer, inputs, n=a.generations, new_tokens=new_tokens)
                 for _ in range(a.steps)]
        gen = sum(s["generate_s"] for s in steps) / len(steps)
        upd = sum(s["update_s"] for s in steps) / len(steps)
        tok_s = steps[0]["tokens"] / gen
        weight_bytes = params * (2 if dtype == torch.bfloat16 else 4)
        row = {"parameters": params, "seconds_per_step": gen + upd, "generate_s": gen, "update_s": upd,
               "generated_tokens_per_s": tok_s,
               "peak_memory_GiB": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}
        for name, bw in BANDWIDTH.items():
            if name in results["device"]:
                bound = a.generations * bw / weight_bytes  # tokens/s if each decode step only reads the weights
                row.update({"bandwidth_bound_tokens_per_s": bound, "fraction_of_bound": tok_s / bound})
        results["runs"]["checkpointing" if checkpointing else "no checkpointing"] = row
        del policy, ref, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if a.vllm:
        results["vllm"] = vllm_generation(config, results["prompt_len"], a.generations, new_tokens, a.vllm_memory)
        hf = results["runs"]["no checkpointing"]["generated_tokens_per_s"]
        results["vllm"]["speedup_over_hf"] = results["vllm"]["generated_tokens_per_s"] / hf
    print(json.dumps(results, indent=2))
    if a.record:
        for line in record(results, a.throughput_file):
            print(line)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
