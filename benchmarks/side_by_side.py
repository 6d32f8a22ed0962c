"""Training the runs a store lacks: one process with every core against N processes side by side with cores/N
threads each (what ``medrl book --jobs N`` does), measured in one run on this machine.

Both ways train every run of the profile's study into a fresh temporary results store, each from its own copy of a
model cache in which the shared start models were built beforehand (not timed; anything a run builds on first use,
such as the reference LM, is built inside each timing alike). Prints both wall times and their ratio.

    .venv/bin/python benchmarks/side_by_side.py [--profile smoke] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    from medrl_lib.cli.cluster import train_side_by_side
    from medrl_lib.config import load_profile
    from medrl_lib.training.standins import ensure_start_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke", help="a tiny profile (smoke: minutes; cpu: about an hour)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes side by side (default: one per core)")
    a = ap.parse_args()
    if a.jobs < 2:
        raise SystemExit("--jobs must be at least 2 (1 is the way it is compared with)")
    with tempfile.TemporaryDirectory() as tmp:
        built = f"{tmp}/cache"
        ensure_start_model(load_profile(a.profile, {"cache_dir": built}), "instruct")  # base, then instruct from it
        times, runs = {}, {}
        for jobs in (1, a.jobs):
            cache = f"{tmp}/cache-{jobs}"
            shutil.copytree(built, cache)
            overrides = {"cache_dir": cache, "results_dir": f"{tmp}/results-{jobs}"}
            lines: list[str] = []
            t0 = time.perf_counter()
            if train_side_by_side(a.profile, overrides, jobs, Path(tmp) / f"logs-{jobs}", log=lines.append) != 0:
                raise SystemExit(f"a run failed with --jobs {jobs}: logs in {tmp}/logs-{jobs}")
            times[jobs] = time.perf_counter() - t0
            runs[jobs] = sum(" in " in line and "/seed" in line for line in lines)
    cores = os.cpu_count() or 1
    print(f"profile {a.profile}, {runs[1]} runs on {cores} cores: one process with {cores} threads "
          f"{times[1]:.0f} s; {a.jobs} processes side by side with {max(1, cores // a.jobs)} thread(s) each "
          f"{times[a.jobs]:.0f} s; ratio {times[1] / times[a.jobs]:.2f}x")


if __name__ == "__main__":
    main()
