"""Multi-process training: accelerate + DeepSpeed ZeRO-2 in a subprocess, its output streamed to the caller.

The caller (a notebook, through :func:`medrl_lib.experiments.runs.grpo_arm` or ``sft_arm``) runs :func:`launch_training` when
the profile asks for more than one process, handing over the resolved profile as a YAML file. Each process runs
this module's ``main``, which rebuilds the same train split (:func:`medrl_lib.data.splits.make_splits`), trains
with :func:`medrl_lib.training.train.fit` (GRPO, full SFT, LoRA or DPO) under DeepSpeed, and rank 0 writes the final model
to ``<output>/final`` and the training log to ``<output>/log_history.json``. This module only launches: it
imports nothing that caches or evaluates runs. The same launcher runs 2 CPU processes over gloo in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from medrl_lib.config import load_profile, repo_root
from medrl_lib.training.train import METHODS

DEEPSPEED_CONFIG = "configs/deepspeed/zero2.json"
ACCELERATE_CONFIG = "configs/accelerate/zero2.yaml"


def free_port() -> int:
    """A TCP port free on this machine now (the OS picks it), for the rendezvous of one launch: two runs that share a
    node (two 2-GPU jobs on a 4-GPU node, or tests side by side) must not meet on one fixed port."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(profile_path: str, overrides: dict, model_path: str, output_dir: str,
                   num_processes: int, bf16: bool, main_port: int | None = None, method: str = "grpo") -> list[str]:
    """The ``accelerate launch`` command line that trains ``method`` with DeepSpeed ZeRO-2 in ``num_processes``
    (``main_port``: the rendezvous port; default a free one, :func:`free_port`)."""
    root = repo_root()
    main_port = main_port or free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--config_file", str(root / ACCELERATE_CONFIG),
           "--num_processes", str(num_processes),
           "--main_process_port", str(main_port),
           "--mixed_precision", "bf16" if bf16 else "no",
           "--deepspeed_config_file", str(root / DEEPSPEED_CONFIG),
           "-m", "medrl_lib.training.launch",
           "--profile", profile_path, "--overrides", json.dumps(overrides),
           "--model", model_path, "--output", output_dir, "--method", method]
    return cmd


#: What each rank prints once every rank has passed the last barrier (rank 0's outputs are then written).
DONE = "[medrl-launch] finished rank"


def finished_cleanly(finished: set[str], num_processes: int, output_dir: str) -> bool:
    """Whether every rank printed :data:`DONE` and rank 0's outputs exist: a later exit code is teardown noise."""
    out = Path(output_dir)
    return (len(finished) == num_processes and (out / "launch_info.json").is_file()
            and (out / "log_history.json").is_file())


def launch_training(profile_path: str, overrides: dict, model_path: str, output_dir: str, num_processes: int,
                    bf16: bool, *, method: str = "grpo", dry_run: bool = False, env: dict | None = None) -> dict:
    """Run the launch command, streaming its output line by line; return the rank-0 training log.

    ``dry_run`` prints the command and returns without running it.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cmd = launch_command(profile_path, overrides, model_path, output_dir, num_processes, bf16, method=method)
    print("launch:", shlex.join(cmd), flush=True)
    if dry_run:
        return {"command": cmd}
    run_env = {**os.environ, **(env or {})}
    run_env.setdefault("TORCH_EXTENSIONS_DIR", str(repo_root() / ".cache" / "torch_extensions"))
    run_env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=run_env,
                            cwd=str(repo_root()))
    tail: list[str] = []
    finished: set[str] = set()
    errors: list[str] = []  # each rank's exception lines: the crashing rank's cause is often not in the tail
    for line in proc.stdout:
        tail = (tail + [line])[-60:]
        if ("Error" in line or "Exception" in line) and "c10d" not in line and "elastic" not in line:
            errors = (errors + [line])[-20:]
        if line.startswith(DONE):
            finished.add(line.strip())
        elif line.startswith(("[grpo]", "[sft]", "[lora]", "[dpo]", "[rank", "launch", "Traceback")) or "Error" in line:
            print(line, end="", flush=True)
    if proc.wait() != 0 and finished_cleanly(finished, num_processes, output_dir):
        # Every rank passed the last barrier after rank 0 wrote the model: a crash while the interpreter tears
        # down (seen with gloo: "terminate called without an active exception") loses nothing.
        print(f"launch: a process exited with {proc.returncode} after every rank finished; its outputs are complete",
              flush=True)
    elif proc.returncode != 0:
        raise RuntimeError(f"multi-process {method} failed (exit {proc.returncode}); errors reported:\n"
                           f"{''.join(errors)}\nlast output:\n{''.join(tail)}")
    return json.loads((Path(output_dir) / "log_history.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="one process of a multi-process training run (started by accelerate)")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--overrides", default="{}")
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--method", choices=METHODS, default="grpo")
    a = ap.parse_args(argv)
    from medrl_lib.data.splits import make_splits
    from medrl_lib.models.loading import TINY_MARKER
    from medrl_lib.training.train import fit

    profile = load_profile(a.profile, overrides=json.loads(a.overrides))
    train, _ = make_splits(profile)
    out = Path(a.output)
    res = fit(a.method, profile, a.model, train, str(out / "checkpoints"),
              deepspeed=str(repo_root() / DEEPSPEED_CONFIG))
    trainer, model, processor, log = res["trainer"], res["model"], res["processor"], res["log_history"]
    state = trainer.accelerator.state
    peaks = trainer.accelerator.gather(peak_memory(trainer.accelerator.device)).tolist()  # one pair per rank
    if a.method == "grpo":
        trainer.save_model(str(out / "final"))  # every rank takes part (ZeRO); rank 0 writes
    if trainer.accelerator.is_main_process:
        if a.method != "grpo":
            model.save_pretrained(str(out / "final"))  # ZeRO-2 keeps whole weights on every rank
        processor.save_pretrained(str(out / "final"))
        if profile.model.kind == "tiny":
            (out / "final" / TINY_MARKER).write_text("{}")
        plugin = state.deepspeed_plugin
        info = {"method": a.method, "deepspeed": trainer.is_deepspeed_enabled,
                "zero_stage": plugin.zero_stage if plugin else None, "world_size": trainer.accelerator.num_processes,
                "backend": str(state.backend),
                "peak_memory_gib": [{"allocated": a / 2**30, "reserved": r / 2**30} for a, r in peaks]}
        (out / "launch_info.json").write_text(json.dumps(info))
        (out / "log_history.json").write_text(json.dumps(log))
    trainer.accelerator.wait_for_everyone()  # no rank leaves while rank 0 still writes
    print(f"{DONE} {trainer.accelerator.process_index}", flush=True)


def peak_memory(device):
    """``[[allocated, reserved]]`` peak bytes of this process on ``device`` (CUDA's allocator; on a CPU, the
    process's peak resident memory for both), as a tensor on ``device`` for gathering over the ranks."""
    import torch

    if torch.device(device).type == "cuda":
        pair = [torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)]
    else:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        pair = [rss, rss]
    return torch.tensor([pair], dtype=torch.float64, device=device)


def exit_now(code: int = 0) -> None:
    """Leave without running C++ destructors: communication threads torn down at interpreter exit can abort a
    finished rank (``terminate called without an active exception``) and fail a run whose outputs are complete."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
    exit_now(0)
