"""Does a judge's Yes/No on "is this reasoning clinically grounded?" carry signal?

Zhu et al. (section 3.2) reward the policy with a reference LLM's Yes/No (BioGPT, BioMistral). BioGPT is a
biomedical language model, not an instruction-tuned one: whether its next-token Yes/No separates grounded from
ungrounded reasoning is an empirical question, which this script measures on pairs whose answer is known.

Items are synthetic (:mod:`medrl_lib.data.synthetic`): each has a question and its true facts. Each item gives
two (question, reasoning) pairs, so that half of all pairs are grounded and half corrupted:

* **grounded**: the item's own report, :func:`~medrl_lib.data.synthetic.describe` of its facts;
* **corrupted**, by ``--corruption``:

  - ``swapped-findings`` (default): the same report with every finding changed: another modality, each lesion
    moved to the opposite quadrant, small and large exchanged (fluent, and wrong for the image);
  - ``other-image``: the report of another item of another modality (the report of another image);
  - ``shuffled``: the item's own report with its words in random order (tests fluency only).

The judge sees the question and the reasoning only, as in training (never the image): a corruption it cannot
detect from the text gives no signal even for a perfect reader; ``swapped-findings`` and ``other-image``
contradict the question whenever the question names the modality.

Printed: the judge's Yes-rate on each half with a 95% bootstrap interval, the difference (grounded minus
corrupted, paired bootstrap over items), the mean Yes-minus-No score of each half, and the AUC of the
Yes-minus-No score (:meth:`medrl_lib.rl.judges.LLMJudge.scores`) for telling grounded from corrupted, with a 95%
bootstrap interval (items resampled, both halves together). An AUC near 0.5 and a difference whose interval holds
0 mean no signal. ``--judge oracle`` (:class:`medrl_lib.rl.oracle.OracleJudge`, the synthetic facts) is the
reference: it scores a corrupted report No by construction for the first two corruptions.

    python benchmarks/judge_signal.py --judge microsoft/biogpt                  # GPU machine with the hub cache
    python benchmarks/judge_signal.py --judge BioMistral/BioMistral-7B --dtype bfloat16   # its chat template
    python benchmarks/judge_signal.py --judge /path/to/local/model --items 50   # a local folder, CPU or GPU
    python benchmarks/judge_signal.py --judge oracle                            # the reference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

CORRUPTIONS = ("swapped-findings", "other-image", "shuffled")


def swapped_findings(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts with every finding changed: the next modality, each lesion in the opposite quadrant, size flipped.

    >>> swapped_findings({"modality": "CT", "n_lesions": 1, "lesions": [{"quadrant": "upper left", "size": "small"}]})
    {'modality': 'X-ray', 'n_lesions': 1, 'lesions': [{'quadrant': 'lower right', 'size': 'large'}]}
    """
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import QUADRANTS  # upper left, upper right, lower left, lower right

    modality = MODALITIES[(MODALITIES.index(facts["modality"]) + 1) % len(MODALITIES)]
    lesions = [dict(lesion, quadrant=QUADRANTS[3 - QUADRANTS.index(lesion["quadrant"])],  # the opposite quadrant
                    size="large" if lesion["size"] == "small" else "small") for lesion in facts["lesions"]]
    lesions.sort(key=lambda lesion: QUADRANTS.index(lesion["quadrant"]))  # describe() lists them in this order
    return dict(facts, modality=modality, lesions=lesions)


def make_pairs(n_items: int, seed: int, corruption: str) -> dict[str, list[str]]:
    """``questions``, ``grounded``, ``corrupted`` (reasonings) and ``facts`` (JSON) of ``n_items`` synthetic items."""
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, describe, generate

    if corruption not in CORRUPTIONS:
        raise ValueError(f"corruption must be one of {CORRUPTIONS}, got {corruption!r}")
    data = generate(SyntheticConfig(n_items=n_items, modalities=MODALITIES, image_size=28, seed=seed,
                                    id_prefix="judge-signal"))
    facts = [json.loads(f) for f in data["facts"]]
    grounded = [describe(f) for f in facts]
    rng = np.random.default_rng(seed)
    corrupted = []
    for i, f in enumerate(facts):
        if corruption == "swapped-findings":
            corrupted.append(describe(swapped_findings(f)))
        elif corruption == "other-image":
            others = [j for j in range(n_items) if facts[j]["modality"] != f["modality"]]
            if not others:
                raise ValueError("other-image needs items of at least two modalities (use --items 2 or more)")
            corrupted.append(grounded[int(rng.choice(others))])
        else:
            words = grounded[i].split()
            corrupted.append(" ".join(words[k] for k in rng.permutation(len(words))))
    return {"questions": list(data["question"]), "grounded": grounded, "corrupted": corrupted,
            "facts": list(data["facts"])}


def auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """P(a positive scores above a negative), ties counted one half (Mann-Whitney); NaN if a side is empty.

    >>> auc([3, 2], [1, 0]), auc([1, 0], [3, 2]), auc([1, 1], [1, 1]), auc([2, 0], [1, 1])
    (1.0, 0.0, 0.5, 0.5)
    """
    pos, neg = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def auc_interval(pos: np.ndarray, neg: np.ndarray, *, n_boot: int, seed: int,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap of :func:`auc` over items: item ``i`` contributes ``pos[i]`` and ``neg[i]``."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        index = rng.integers(0, len(pos), size=len(pos))
        stats.append(auc(pos[index], neg[index]))
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def judge_scores(args: argparse.Namespace) -> tuple[Callable[..., list[float]], Callable[[], str]]:
    """``(score, describe)``: ``score(questions, reasonings, facts) -> list[float]`` (positive means Yes; the oracle
    scores +1/-1) and ``describe()``, the judge as printed (call it after scoring: the prompt form is known then)."""
    from medrl_lib.rl.judges import LLMJudge
    from medrl_lib.rl.oracle import OracleJudge

    if args.judge == "oracle":
        oracle = OracleJudge()
        return (lambda q, r, f: [1.0 if v else -1.0 for v in oracle(q, r, f)]), (lambda: "oracle (the synthetic facts)")
    chat = {"auto": None, "on": True, "off": False}[args.chat_template]
    judge = LLMJudge(args.judge, batch_size=args.batch_size, max_prompt_tokens=args.max_prompt_tokens,
                     chat_template=chat, device=args.device, dtype=args.dtype)

    def score(questions: list[str], reasonings: list[str], facts: list[str]) -> list[float]:
        return judge.scores(questions, reasonings)

    def describe() -> str:
        form = "chat template" if judge.uses_chat_template else "plain prompt"
        return f"{args.judge} ({form}; Yes iff its Yes-minus-No score is above 0)"

    return score, describe


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    from medrl_lib.scoring.stats import bootstrap_ci, paired_difference_ci

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--judge", required=True, help="hub id, local folder, or 'oracle'")
    ap.add_argument("--items", type=int, default=200, help="synthetic items (each gives a grounded and a corrupted pair)")
    ap.add_argument("--corruption", choices=CORRUPTIONS, default="swapped-findings")
    ap.add_argument("--seed", type=int, default=0, help="seed of the items and of the corruption")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default=None, help="default: CUDA if available, else CPU")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--chat-template", choices=("auto", "on", "off"), default="auto",
                    help="auto: the tokenizer's chat template when it has one (LLMJudge's default)")
    ap.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the model's window")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args(argv)
    if args.items < 2:
        ap.error("--items must be at least 2")

    pairs = make_pairs(args.items, args.seed, args.corruption)
    score, describe = judge_scores(args)
    n = args.items
    scores = score(pairs["questions"] * 2, pairs["grounded"] + pairs["corrupted"], pairs["facts"] * 2)
    s_g, s_c = np.asarray(scores[:n], dtype=float), np.asarray(scores[n:], dtype=float)
    yes_g, yes_c = 100.0 * (s_g > 0), 100.0 * (s_c > 0)
    ci_g = bootstrap_ci(yes_g, n_boot=args.n_boot, seed=args.seed)
    ci_c = bootstrap_ci(yes_c, n_boot=args.n_boot, seed=args.seed)
    diff = paired_difference_ci(yes_g, yes_c, n_boot=args.n_boot, seed=args.seed)
    area = auc(s_g, s_c)
    area_low, area_high = auc_interval(s_g, s_c, n_boot=args.n_boot, seed=args.seed)
    name = describe()
    print(f"judge: {name}")
    print(f"pairs: {n} grounded + {n} corrupted ({args.corruption}) on synthetic items, seed {args.seed}; "
          f"95% bootstrap intervals, {args.n_boot} resamples")
    print(f"Yes-rate, grounded reasonings:  {ci_g.value:5.1f}% [{ci_g.low:.1f}, {ci_g.high:.1f}]")
    print(f"Yes-rate, corrupted reasonings: {ci_c.value:5.1f}% [{ci_c.low:.1f}, {ci_c.high:.1f}]")
    print(f"difference (grounded - corrupted): {diff.value:+.1f} points [{diff.low:+.1f}, {diff.high:+.1f}]")
    print(f"mean Yes-minus-No score: grounded {s_g.mean():+.3f}, corrupted {s_c.mean():+.3f}")
    print(f"AUC of the Yes-minus-No score (grounded vs corrupted): {area:.3f} [{area_low:.3f}, {area_high:.3f}]")
    result = {"judge": args.judge, "description": name, "corruption": args.corruption, "items": n,
              "seed": args.seed, "n_boot": args.n_boot,
              "yes_rate_grounded": [ci_g.value, ci_g.low, ci_g.high],
              "yes_rate_corrupted": [ci_c.value, ci_c.low, ci_c.high],
              "difference": [diff.value, diff.low, diff.high], "mean_score_grounded": float(s_g.mean()),
              "mean_score_corrupted": float(s_c.mean()), "auc": [area, area_low, area_high]}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
