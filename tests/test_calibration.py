"""Calibration checks C1-C4: computed from per-item records, each able to come out 'not met'."""

import pytest

from medrl_lib.experiments.results import Run
from medrl_lib.scoring.calibration import RESTS_ON, calibration_rows, calibration_summary, gain_interval
from medrl_lib.scoring.claims import CLAIMS, item_matrix


WELL_FORMED = "<think>r</think>\n<answer>A</answer>"
THINK_ONLY = "<think>r</think> The answer is A."  # a <think> block, but not the format


def _run(correct: dict[str, list[bool]], formatted: float = 1.0, low_high=None) -> Run:
    """A run whose records are ``correct[modality]``; the first ``formatted`` share of items is well formed, the
    others have a <think> block but break the format (so only the format rule tells them apart)."""
    recs = []
    for modality, values in correct.items():
        for k, c in enumerate(values):
            ok = k < formatted * len(values)
            recs.append({"id": f"{modality}-{k}", "modality": modality, "correct": c and ok,
                         "completion": WELL_FORMED if ok else THINK_ONLY, "reasoning": "r", "reasoning_tokens": 5})
    mri = correct.get("MRI", [])
    acc = 100.0 * sum(mri) / max(1, len(mri))
    lo, hi = low_high or (acc - 8.0, acc + 8.0)
    return Run(path=None, config={}, metrics={"eval/accuracy/mri": acc, "eval/accuracy/mri/low": lo,
                                               "eval/accuracy/mri/high": hi}, records=recs)


def _items(share: float, n: int = 60) -> list[bool]:
    return [k < share * n for k in range(n)]


CHANCE = {"MRI": 30.0, "CT": 30.0, "X-ray": 30.0}


def _rows(start_mri=0.5, trained_mri=0.9, trained_out=0.5, gain=0.2, base_format=0.6, start_format=0.7, no_base=False):
    start = _run({m: _items(start_mri) for m in CHANCE}, formatted=start_format)
    base0 = _run({m: _items(0.0) for m in CHANCE}, formatted=0.0)
    grpo = [_run({m: _items(min(1.0, start_mri + gain)) for m in CHANCE}) for _ in range(3)]
    base = [_run({m: _items(0.3) for m in CHANCE}, formatted=base_format) for _ in range(3)]
    mri = [_run({"MRI": _items(trained_mri), "CT": _items(trained_out), "X-ray": _items(trained_out)})
           for _ in range(3)]
    if no_base:  # a profile without a base checkpoint (today's models): no base start, no base + GRPO
        base0 = base = None
    rows = calibration_rows(ood_start=start, instruct_start=start, base_start=base0, grpo_instruct=grpo, grpo_base=base,
                            mri_trained={"GRPO": mri}, chance=CHANCE, n_boot=300)
    return {(r["check"], r["what"].split()[-1]): r["verdict"] for r in rows}


@pytest.mark.parametrize("kwargs, check, expected", [
    pytest.param({}, ("C1", "ceiling"), "met", id="c1-room-both-ways"),  # 50% [42, 58]: above 30, below 90
    pytest.param({"start_mri": 0.3}, ("C1", "ceiling"), "not met", id="c1-at-chance"),  # interval reaches chance
    pytest.param({"start_mri": 0.95}, ("C1", "ceiling"), "not met", id="c1-at-ceiling"),  # no room to improve
    pytest.param({}, ("C2", "X-ray"), "met", id="c2-modalities-differ"),  # 90% in domain vs 50% outside
    pytest.param({"trained_out": 0.9}, ("C2", "X-ray"), "not met", id="c2-no-gap"),  # styles too alike
    pytest.param({}, ("C3", "accuracy"), "met", id="c3-accuracy-rises"),  # +20 points on 180 items
    pytest.param({"gain": 0.0}, ("C3", "accuracy"), "not met", id="c3-no-gain"),  # GRPO did nothing
    pytest.param({}, ("C3", "share"), "met", id="c3-format-rises"),  # 70% -> 100% well formed
    pytest.param({"start_format": 1.0}, ("C3", "share"), "not met", id="c3-format-already-full"),  # nothing to teach
    pytest.param({}, ("C4", "format"), "met", id="c4-base-learns-format"),  # 0% -> 60%
    pytest.param({"base_format": 0.0}, ("C4", "format"), "not met", id="c4-base-never-formats"),  # as on cpu
])
def test_calibration_verdicts(kwargs, check, expected):
    assert _rows(**kwargs)[check] == expected


def test_without_a_base_model_c4_is_left_out_and_the_other_checks_are_unchanged():
    full, today = _rows(), _rows(no_base=True)
    assert {check for check, _ in today} == {"C1", "C2", "C3"}
    assert today == {k: v for k, v in full.items() if k[0] != "C4"}


def test_gain_pairs_each_seed_with_the_start_on_the_same_items():
    start = _run({"MRI": _items(0.5)})
    after = [_run({"MRI": _items(0.8)}) for _ in range(3)]
    mean_after, mean_before, diff, low, high = gain_interval(after, start, n_boot=200)
    assert (mean_after, mean_before, diff) == pytest.approx((80.0, 50.0, 30.0)) and 0 < low <= 30 <= high


@pytest.mark.parametrize("verdicts, expected", [
    pytest.param({"C1": "met", "C2": "not met"}, "met in full: C1. Not met (in at least one row): C2; the verdict "
                 "of E6 rests on it", id="ood-check"),  # only the OOD claim is affected
    pytest.param({"C1": "met", "C4": "not met"}, "the verdict of E1 rests on it", id="base-format"),  # as on cpu
    pytest.param({"C1": "not met", "C2": "met"}, "every claim rests on it", id="no-room"),  # nothing can differ
    pytest.param({"C1": "met", "C2": "met"}, "met in full: C1, C2.", id="all-met"),  # no warning
])
def test_summary_names_what_is_not_met_and_the_claims_on_it(verdicts, expected):
    rows = [{"check": c, "verdict": v} for c, v in verdicts.items()]
    assert expected in calibration_summary(rows)


def test_a_check_met_in_one_row_and_not_another_is_not_met():
    rows = [{"check": "C2", "verdict": "met"}, {"check": "C2", "verdict": "not met"}]
    assert "met in full: none" in calibration_summary(rows)


def test_every_check_names_real_claims():
    ids = {c.id for c in CLAIMS}
    assert set(RESTS_ON) == {"C1", "C2", "C3", "C4"}
    assert all(claims and set(claims) <= ids for claims in RESTS_ON.values())


def test_start_model_sizes_of_hub_models_names_them_without_loading():
    from medrl_lib.config import load_profile
    from medrl_lib.training.standins import start_model_sizes

    df = start_model_sizes(load_profile("paper"))
    assert df.loc["hub id"].tolist() == ["Qwen/Qwen2-VL-2B", "Qwen/Qwen2-VL-2B-Instruct"]


@pytest.mark.parametrize("record, expected", [
    pytest.param({"completion": WELL_FORMED, "reasoning": "r"}, 100.0, id="well-formed"),  # both blocks
    pytest.param({"completion": THINK_ONLY, "reasoning": "r"}, 0.0, id="think-block-only"),  # not the format
    pytest.param({"completion": WELL_FORMED + " Done.", "reasoning": "r"}, 0.0, id="text-after"),  # text outside
    pytest.param({"completion": "junk", "well_formed": True, "reasoning": None}, 100.0, id="stored-field"),  # Record field
])
def test_format_quantity_is_the_format_reward_rule(record, expected):
    run = Run(path=None, config={}, metrics={}, records=[dict(record, id="i0", modality="MRI")])
    assert item_matrix([run], "format")[0].tolist() == [[expected]]


def test_format_gain_counts_well_formed_completions_not_think_blocks():
    start = _run({"MRI": _items(0.5)}, formatted=0.2)  # every item has a <think> block; 20% are well formed
    after = [_run({"MRI": _items(0.5)}, formatted=0.9) for _ in range(2)]
    mean_after, mean_before, diff, _, _ = gain_interval(after, start, "format", n_boot=100)
    assert (mean_after, mean_before, diff) == pytest.approx((90.0, 20.0, 70.0))
