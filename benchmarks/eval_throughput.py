"""Items per second of the batched evaluation harness over a one-item-at-a-time loop, measured in one run,
on the same tiny model and test items; and the metric overhead as a share of evaluation time.

    .venv/bin/python benchmarks/eval_throughput.py [--profile cpu] [--per-modality 30] [--batch-size 50]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    from medrl_lib.config import load_profile
    from medrl_lib.training.evaluate import generate_records
    from medrl_lib.data.splits import make_splits
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--per-modality", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=50)
    a = ap.parse_args()
    profile = load_profile(a.profile, overrides={"data.test_per_modality": a.per_modality})
    _, test = make_splits(profile)
    model, processor = load_policy(profile, ensure_start_model(profile, "instruct"))
    kw = dict(max_new_tokens=profile.eval.max_new_tokens, mode=profile.eval.prompt_mode)
    generate_records(model, processor, test.select(range(4)), batch_size=4, **kw)  # warm-up
    t0 = time.perf_counter()
    batched = generate_records(model, processor, test, batch_size=a.batch_size, **kw)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = generate_records(model, processor, test, batch_size=1, **kw)
    t_single = time.perf_counter() - t0
    agree = sum(b.completion == s.completion for b, s in zip(batched, single)) / len(test)
    print(f"{len(test)} items ({a.per_modality} per modality), profile {a.profile}, greedy, "
          f"max_new_tokens {kw['max_new_tokens']}")
    print(f"batched (batch {a.batch_size}): {len(test) / t_batched:.1f} items/s; one at a time: "
          f"{len(test) / t_single:.1f} items/s")
    print(f"speed-up batched / one-at-a-time: {t_single / t_batched:.2f}x  (target >= 4x)")
    print(f"identical completions in both modes: {100 * agree:.0f}%")

    import dataclasses

    from medrl_lib.experiments.runs import metric_scorers
    from medrl_lib.scoring.metrics import compute_metrics

    scorers = metric_scorers(profile)  # built (or loaded from the cache) before timing
    cols = test.select_columns(["question", "options", "answer", "facts"])
    refs = [o[ord(a) - 65] for o, a in zip(cols["options"], cols["answer"])]
    records = [dataclasses.asdict(r) for r in batched]
    compute_metrics(records[:4], reference_texts=refs[:4], questions=cols["question"][:4], facts=cols["facts"][:4],
                    n_boot=profile.eval.n_boot, **scorers)  # warm-up: loads the scorer models
    t0 = time.perf_counter()
    compute_metrics(records, reference_texts=refs, questions=cols["question"], facts=cols["facts"],
                    n_boot=profile.eval.n_boot, **scorers)
    t_metrics = time.perf_counter() - t0
    print(f"metrics (similarity {profile.eval.similarity}, perplexity {profile.eval.perplexity}, thinking "
          f"{profile.eval.thinking}, {profile.eval.n_boot} bootstrap resamples): {t_metrics:.2f} s, "
          f"{100 * t_metrics / (t_batched + t_metrics):.0f}% of batched evaluation time")


if __name__ == "__main__":
    main()
