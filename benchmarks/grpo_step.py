"""Time per GRPO step of our trainer (MedrlGRPOTrainer) over TRL's stock GRPOTrainer, measured in one run.

Same tiny model, data, seed and settings; the two trainers alternate over several rounds so that machine
noise hits both alike, and the median step time of each is compared.

    .venv/bin/python benchmarks/grpo_step.py [--profile smoke] [--steps 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    """Wall time of every optimizer step (generation, rewards, loss and update)."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def main() -> None:
    from trl import GRPOTrainer

    from medrl_lib.config import load_profile
    from medrl_lib.data.splits import make_splits
    from medrl_lib.rl.grpo import MedrlGRPOTrainer
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import run_grpo

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    profile = load_profile(a.profile, overrides={"grpo.max_steps": a.steps})
    train, _ = make_splits(profile)
    policy = ensure_start_model(profile)
    times: dict[str, list[float]] = {"ours": [], "trl": []}
    for _ in range(a.rounds):
        for name, cls in (("trl", GRPOTrainer), ("ours", MedrlGRPOTrainer)):
            timer = StepTimer()
            with tempfile.TemporaryDirectory() as out:
                run_grpo(profile, policy, train, out, callbacks=[timer], trainer_cls=cls, save_strategy="no")
            times[name] += timer.times[1:]  # the first step pays one-off costs
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"profile {a.profile}: {a.steps} steps x {a.rounds} rounds per trainer")
    print(f"median seconds per GRPO step: TRL stock {med['trl']:.4f}, ours {med['ours']:.4f}")
    print(f"ratio ours / TRL: {med['ours'] / med['trl']:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
