"""GRPO steps of the real training path at the paper's shapes: ``medrl_lib.training.launch`` (accelerate + DeepSpeed ZeRO-2, fp32
master weights), ``MedrlGRPOTrainer`` with the paper profile's settings, images above the pixel cap (494 image tokens
each), completions up to the paper's 700 tokens, rollouts from the engine the profile resolves here (colocated vLLM
where installed, else ``generate``).

Nothing is downloaded: the policy is Qwen2-VL-2B's architecture with random weights and the data are PMC-VQA files
in the published layout (``benchmarks/paper_shapes.py``). It prints, as JSON: peak GPU memory per rank (allocated and
reserved, from ``launch_info.json``) beside the memory plan of ``medrl check`` for the same settings, seconds per step
and per rollout phase (TRL's ``step_time``, ``timing/rollouts_s``), completion tokens/s of the rollouts against the
bandwidth bound of decoding (each decoding step reads the language model's weights once: ``G x bandwidth / bytes``,
the vision tower excluded), and the update's tokens/s. ``--record`` writes the rollout and update figures where
``medrl estimate`` reads them (:func:`medrl_lib.ops.estimate.record_throughput`).

    python benchmarks/gpu_grpo_step.py                          # on GPUs: the paper's shapes, one process per GPU
    python benchmarks/gpu_grpo_step.py --processes 1 --record   # one GPU; figures into the estimate
    python benchmarks/gpu_grpo_step.py --scale rehearsal         # anywhere: the rehearsal's stand-in, 2 CPU processes
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Published memory bandwidth (bytes/s) of the GPUs this study names, for the decoding bound.
BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}


def bandwidth(device: str) -> float | None:
    return next((v for k, v in BANDWIDTH.items() if k in device), None)


def run(scale: str, processes: int, steps: int, work: Path, rollouts: str = "auto") -> dict:
    """Train ``steps`` GRPO steps of the instruct arm at ``scale`` through ``medrl_lib.training.launch``; return the figures."""
    import torch

    from medrl_lib.experiments import study
    from medrl_lib.training.budget import grpo_prompts_per_step
    from medrl_lib.training.engines import rollout_engine
    from medrl_lib.experiments.runs import write_profile
    from medrl_lib.training.launch import launch_training
    from medrl_lib.ops.memory import grpo_memory_plan, shapes_of
    from medrl_lib.ops.preflight import count_parameters, policy_config

    from paper_shapes import data_folder, decode_bytes, policy_folder

    policy = policy_folder(work, scale)
    profile_name = "paper" if scale == "paper" else "rehearsal"
    overrides = {"num_processes": processes, "grpo.max_steps": steps, "grpo.save_steps": 10 ** 6,
                 "grpo.logging_steps": 1, "grpo.keep_final_model": False, "grpo.rollouts": rollouts,
                 "model.instruct": str(policy), "model.base": str(policy),
                 "data.pmc_vqa_path": str(data_folder(work)), "data.train_size": 16, "data.test_size": 12}
    p = study.arm_profile(profile_name, "grpo-instruct", overrides)
    out = work / f"run-{scale}-{processes}"
    out.mkdir(parents=True, exist_ok=True)
    write_profile(p, out / "profile.yaml")  # the arm's resolved settings, as a study run hands them over
    log = launch_training(str(out / "profile.yaml"), {}, str(policy), str(out), processes, True)
    info = json.loads((out / "launch_info.json").read_text())
    steps_log = [e for e in log if "step_time" in e]
    timed = steps_log[1:] or steps_log  # the first step pays compilation and allocation
    step_s = sum(e["step_time"] for e in timed) / len(timed)
    rollout_s = sum(e.get("timing/rollouts_s", 0.0) for e in timed) / len(timed)
    per_gpu = grpo_prompts_per_step(p) * p.grpo.num_generations / processes       # completions a GPU samples
    completion = sum(e["completions/mean_length"] for e in timed) / len(timed)
    prompt = p.grpo.max_prompt_length  # an upper bound of the prompt tokens the update reads
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    config, _ = policy_config(str(policy))
    found = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else None
    rollouts = rollout_engine(p)  # what every rank resolved on this machine
    plan = grpo_memory_plan(p, count_parameters(config), shapes_of(config), found, rollouts=rollouts)
    bw = bandwidth(device)
    rollout_tps = per_gpu * completion / rollout_s if rollout_s else None
    return {
        "device": device, "scale": scale, "processes": processes, "steps": len(steps_log),
        "rollouts": rollouts,
        "peak_memory_gib_per_rank": info.get("peak_memory_gib"),
        "memory_plan_gib": {k: round(v / 2 ** 30, 2) for k, v in plan.terms.items()} | {"peak": round(plan.peak / 2 ** 30, 2)},
        "seconds_per_step": step_s, "rollout_seconds_per_step": rollout_s,
        "completions_per_gpu": per_gpu, "mean_completion_tokens": completion,
        "rollout_completion_tokens_per_s": rollout_tps,
        "decode_bound_tokens_per_s": p.grpo.prompts_per_device * p.grpo.num_generations * bw / decode_bytes(config)
        if bw else None,
        "update_tokens_per_s": per_gpu * (prompt + completion) / max(step_s - rollout_s, 1e-9),
        "zero_stage": info.get("zero_stage"), "backend": info.get("backend"),
    }


def record(results: dict, path: str | None) -> list[str]:
    """Write the rollout and update figures of ``results`` into the throughput file (default: the package's)."""
    from medrl_lib.ops.estimate import gpu_key, record_throughput

    gpu = gpu_key(results["device"])
    what = (f"{results['device']}, {results['processes']} process(es), ZeRO-2, {results['rollouts']} rollouts, "
            f"{results['completions_per_gpu']:g} completions a GPU of {results['mean_completion_tokens']:.0f} tokens, "
            "figures above the pixel cap, random weights of Qwen2-VL-2B")
    source = f"measured by benchmarks/gpu_grpo_step.py on {datetime.date.today().isoformat()} ({what})"
    extra = {"step_seconds": results["seconds_per_step"], "peak_memory_GiB": results["peak_memory_gib_per_rank"],
             "device": results["device"]}
    lines = []
    for engine, figure, value, unit in (
            (results["rollouts"], "generation", results["rollout_completion_tokens_per_s"],
             "completion tokens/s per GPU (GRPO rollouts)"),
            ("train", "grpo", results["update_tokens_per_s"],
             "tokens/s per GPU (prompt + completion: policy forward and backward, reference forward)")):
        if value:
            record_throughput(gpu, engine, figure, value, unit, source, path=path, **extra)
            lines.append(f"recorded {gpu} {engine} {figure}: {value:,.1f} {unit}")
    return lines


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=["paper", "rehearsal"],
                    default="paper" if torch.cuda.is_available() else "rehearsal")
    ap.add_argument("--processes", type=int, default=max(torch.cuda.device_count(), 1) if torch.cuda.is_available()
                    else 2, help="training processes (default: every GPU; 2 on a CPU)")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps (the first is not timed)")
    ap.add_argument("--rollouts", default="auto", choices=["auto", "hf", "vllm"], help="grpo.rollouts")
    ap.add_argument("--work-dir", help="where the policy and data are made (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--record", action="store_true", help="write the figures where medrl estimate reads them")
    ap.add_argument("--throughput-file", help="the file --record writes (default: the package's)")
    a = ap.parse_args(argv)
    if a.record and a.scale != "paper" and not a.throughput_file:
        sys.exit("gpu_grpo_step.py: --record at the rehearsal's scale needs --throughput-file: the package's figures "
                 "are Qwen2-VL-2B's")
    with tempfile.TemporaryDirectory(prefix="grpo-step-") as tmp:
        results = run(a.scale, a.processes, a.steps, Path(a.work_dir or tmp), a.rollouts)
    print(json.dumps(results, indent=2))
    if a.record:
        for line in record(results, a.throughput_file):
            print(line)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
