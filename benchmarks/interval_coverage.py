"""Coverage and width of the seeds-by-items interval against the two-level percentile bootstrap it replaced,
measured in one run by simulation (``medrl_lib.scoring.coverage``): two arms on 300 shared items with a known difference,
training noise between seeds from none to large, 3 and 5 seeds.

    .venv/bin/python benchmarks/interval_coverage.py [--trials 2000] [--boot-trials 500]   # about 2 minutes
"""

from __future__ import annotations

import argparse

from medrl_lib.scoring.coverage import Scenario, coverage

SEED_NOISE = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)  # logit scale; 0.5 is about 12 points of accuracy between seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=2000, help="simulated studies per cell (Satterthwaite)")
    ap.add_argument("--boot-trials", type=int, default=500, help="simulated studies per cell (bootstrap, slower)")
    ap.add_argument("--items", type=int, default=300)
    a = ap.parse_args()
    print(f"nominal 95%; {a.items} shared items; {a.trials} / {a.boot_trials} simulated studies per cell")
    print(f"{'seeds':>5} {'seed sd':>7} | {'coverage':>8} {'width':>6} | {'bootstrap':>9} {'width':>6} | width ratio")
    for seeds in (3, 5):
        for sd in SEED_NOISE:
            s = Scenario(seeds=seeds, items=a.items, seed_sd=sd)
            ours = coverage(s, trials=a.trials, seed=1)
            boot = coverage(s, trials=a.boot_trials, seed=1, method="bootstrap", n_boot=1000)
            print(f"{seeds:>5} {sd:>7.2f} | {ours['coverage']:>8.3f} {ours['width']:>6.1f} | "
                  f"{boot['coverage']:>9.3f} {boot['width']:>6.1f} | {ours['width'] / boot['width']:.2f}", flush=True)


if __name__ == "__main__":
    main()
