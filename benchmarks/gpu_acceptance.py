"""The GPU acceptance check: one machine with one H100 or H200, no network, about 8 minutes.

1. **environment**: torch, its CUDA, the NVIDIA driver against what that CUDA needs, the GPU (``medrl check``'s
   driver check);
2. **the paper's training path** at the paper's shapes (``gpu_grpo_step.py``: Qwen2-VL-2B's architecture with
   random weights, accelerate + DeepSpeed ZeRO-2 in one process over NCCL, figures above the pixel cap,
   completions up to 700 tokens, a few steps): peak memory of the rank beside the memory plan, seconds per step,
   rollout and update tokens/s against the decoding bound;
3. **the rehearsal on one GPU**: its instruct arm trained through the same launcher (1 process, NCCL), then its test
   items answered by the evaluation engine the profile resolves there (``eval.engine: auto``);
4. **the evaluation engines** on Qwen2-VL-2B's architecture (``gpu_eval_engines.py``): items/s of each engine that
   runs there.

Everything is written to ``--out`` (``acceptance.json``) and printed. Where a package is missing on the GPU machine
(TRL, DeepSpeed, datasets: see ``benchmarks/gpu_wheels.sh``), carry its wheels:

    bash benchmarks/gpu_wheels.sh                     # here: .whl/, about 25 MiB, for the GPU machine's Python 3.12
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
      PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_acceptance.py --out $OUT      # there
    python benchmarks/gpu_acceptance.py --scale rehearsal --out /tmp/acc           # a CPU rehearsal of the command
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def environment() -> dict:
    import torch

    from medrl_lib.config import load_profile
    from medrl_lib.ops.preflight import check_driver, gpus

    found = gpus()
    check = check_driver(load_profile("paper"), found)
    return {"torch": torch.__version__, "cuda": torch.version.cuda,
            "gpus": [{"name": n, "memory_gib": round(m / 2 ** 30, 1)} for n, m in found],
            "driver_check": None if check is None else check.__dict__}


def rehearsal_on_one_device(work: Path) -> dict:
    """The rehearsal's instruct arm through the launcher in one process, then its test items answered."""
    from medrl_lib.training import generation
    from medrl_lib.experiments import study
    from medrl_lib.models.sources import resolve_source
    from medrl_lib.data.splits import make_splits
    from medrl_lib.training.launch import launch_training
    from medrl_lib.experiments.runs import write_profile
    from medrl_lib.training.train import load_policy

    p = study.arm_profile("rehearsal", "grpo-instruct", {"num_processes": 1, "grpo.save_steps": 10 ** 6,
                                                        "cache_dir": str(work / "cache")})
    out = work / "rehearsal"
    out.mkdir(parents=True, exist_ok=True)
    write_profile(p, out / "profile.yaml")
    t = time.time()
    log = launch_training(str(out / "profile.yaml"), {}, str(resolve_source(p.model.instruct)), str(out), 1, True)
    train_s = time.time() - t
    info = json.loads((out / "launch_info.json").read_text())
    model, processor = load_policy(p, str(out / "final"))
    t = time.time()
    answers = generation.answer_items(model, processor, p, make_splits(p)[1], out_dir=out)
    eval_s = time.time() - t
    return {"steps": [e["step"] for e in log if "reward" in e], "backend": info["backend"],
            "world_size": info["world_size"], "peak_memory_gib": info.get("peak_memory_gib"), "train_s": train_s,
            "eval_engine": answers.engine, "eval_device": answers.device, "eval_items": len(answers.records),
            "eval_s": eval_s, "accuracy": sum(r.correct for r in answers.records) / len(answers.records)}


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", choices=["paper", "rehearsal"],
                    default="paper" if torch.cuda.is_available() else "rehearsal",
                    help="the training path's shapes (rehearsal: a CPU rehearsal of this command)")
    ap.add_argument("--steps", type=int, default=3, help="GRPO steps at the paper's shapes (the first is not timed)")
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="folder of acceptance.json")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}

    def part(name, fn):
        t = time.time()
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - one failed part must not hide the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        results[name]["wall_s"] = round(time.time() - t, 1)
        (out / "acceptance.json").write_text(json.dumps(results, indent=2, default=str))
        print(f"[acceptance] {name}: {json.dumps(results[name], default=str)[:2000]}", flush=True)

    with tempfile.TemporaryDirectory(prefix="acceptance-") as tmp:
        work = Path(tmp)
        import gpu_eval_engines
        import gpu_grpo_step

        part("environment", environment)
        part("training_path", lambda: gpu_grpo_step.run(a.scale, 1, a.steps, work))
        part("rehearsal_one_device", lambda: rehearsal_on_one_device(work))
        part("eval_engines", lambda: gpu_eval_engines.measure_architecture(a.scale, work))
    failed = [k for k, v in results.items() if "error" in v]
    print(f"[acceptance] {len(results) - len(failed)} of {len(results)} parts ran" +
          (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
