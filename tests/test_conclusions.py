"""The closing paragraphs (medrl_lib.experiments.conclusions): computed from hand-made scorecard and calibration rows, never
typed; each caveat appears exactly when the rows or the settings raise it."""

import dataclasses
import re

import pytest

from medrl_lib.config import load_profile
from medrl_lib.experiments import conclusions, study
from medrl_lib.experiments.results import Run
from medrl_lib.scoring.claims import CLAIMS, evaluate_claim, verdict

CPU = load_profile("cpu")
SMOKE = load_profile("smoke")


def row(cid="E1", *, diff=3.0, low=-1.0, high=7.0, mde=4.0, paper_effect=None, a=60.0, b=57.0, seeds=3,
        items=300, **extra):
    """A scorecard row as ``evaluate_claim`` makes it; the verdict is computed from the interval unless given."""
    c = next(c for c in CLAIMS if c.id == cid)
    unit = "points" if c.quantity == "accuracy" else "tokens"
    effect = (c.paper_a / c.paper_b - 1) * b if c.quantity == "thinking_length" else c.paper_a - c.paper_b
    effect = effect if paper_effect is None else paper_effect
    out = {"id": cid, "claim": c.text, "paper": c.paper, "ours": f"{a:.1f} vs {b:.1f}",
           "difference [95% CI]": f"{diff:+.1f} [{low:+.1f}, {high:+.1f}] {unit}",
           "verdict": verdict(low, high, c.direction, effect), "seeds": seeds, "items": items, "diff": diff,
           "low": low, "high": high, "paper_effect": effect, "mde": mde, "unit": unit, "quantity": c.quantity,
           "direction": c.direction}
    return {**out, **extra}


def cal_row(check, met=True, what=None):
    return {"check": check, "what": what or f"what {check} checks", "criterion": "95% CI above 0",
            "ours": f"figure of {check}", "verdict": "met" if met else "not met"}


ALL_MET = [cal_row(c) for c in ("C1", "C2", "C2", "C3", "C3", "C4")]


def para(rows, calibration=ALL_MET, profile=CPU, **kw):
    return conclusions.chapter_paragraph(rows if isinstance(rows, list) else [rows], calibration=calibration,
                                         profile=profile, **kw)


# -- the verdict in words, and "not shown" for every verdict but holds -----------------------------------------

@pytest.mark.parametrize("low, high, words", [
    (2.0, 9.0, "the claim holds here"),                                     # interval above 0: holds
    (-9.0, -2.0, "reversed"),                                               # below 0: the opposite
    (-3.0, 2.0, "excludes an effect of the paper's size either way"),       # inside (-E, +E): no effect of its size
    (-9.0, 2.0, "excludes an effect as large as the paper's in the claimed direction"),  # below +E, reaches -E
    (-3.0, 8.0, "inconclusive"),                                            # reaches +E: cannot tell
])
def test_the_paragraph_names_the_verdict(low, high, words):
    r = row("E1", diff=(low + high) / 2, low=low, high=high)
    text = para(r)
    assert words in text
    assert ("not shown" in text) == (r["verdict"] != "holds")
    if r["verdict"] == "holds":
        assert text.startswith("**The miniature shows the paper's claim.")
    else:
        assert text.startswith("**The miniature does not show the paper's claim")


# -- could the miniature have detected the paper's effect? ------------------------------------------------------

@pytest.mark.parametrize("mde, effect, could", [
    (4.0, 6.5, True),     # detects 4 points, the paper's is 6.5: could have shown it
    (6.5, 6.5, True),     # at the boundary: mde <= |E|
    (9.3, 6.5, False),    # detects only 9.3: could not
    (9.3, -6.5, False),   # the size of the paper's effect counts, whatever its sign
    (5.0, -6.5, True),
])
def test_could_not_when_the_detectable_effect_exceeds_the_papers(mde, effect, could):
    text = para(row("E2", mde=mde, paper_effect=effect))
    assert ("could have shown an effect of the paper's size" in text) == could
    assert ("could not" in text) == (not could)
    if not could:  # both figures, from the row
        assert f"{mde:.1f} points, the paper's is {abs(effect):.1f} points" in text


# -- calibration checks not met: named only for the claims that rest on them -----------------------------------

@pytest.mark.parametrize("check, rows, named", [
    ("C4", ["E1"], True),           # C4 (base learns the format) carries the initialisation claim ...
    ("C4", ["E2"], False),          # ... and no other
    ("C2", ["E6"], True),           # C2 (modalities differ) carries the OOD claim ...
    ("C2", ["E5a", "E5b"], False),  # ... not the SFT claims
    ("C3", ["E4a", "E4b"], True),   # C3 (GRPO learns) carries every claim
    ("C1", ["E3a"], True),          # so does C1 (room to improve)
])
def test_a_check_not_met_is_named_only_for_claims_resting_on_it(check, rows, named):
    cal = [r if r["check"] != check else cal_row(check, met=False, what=f"the {check} criterion")
           for r in ALL_MET]
    text = para([row(i) for i in rows], calibration=cal)
    assert (f"Calibration check {check} (the {check} criterion: not met" in text) == named
    assert (f"But calibration check {check}" in text) == named  # the lead says so too


def test_every_check_met_or_no_calibration_gives_no_calibration_caveat():
    for cal in (ALL_MET, None):
        assert "Calibration check" not in para(row("E1"), calibration=cal)


# -- reasoning length: room for the reasoning to grow ----------------------------------------------------------

@pytest.mark.parametrize("overrides, start, room", [
    ({}, 25.0, "There was room for E3a"),                                  # cpu E3 settings: 160 > 96 > 25
    ({"grpo.max_completion_length": 64}, 25.0, "No room for E3a"),         # cap 64 <= target 96
    ({"grpo.length_target_tokens": 20}, 25.0, "No room for E3a"),          # target below the start length
])
def test_length_claims_say_whether_there_was_room(overrides, start, room):
    p = study.arm_profile("cpu", "grpo-sa-ecr", overrides)
    text = para(row("E3a", diff=30.0, low=10.0, high=50.0, mde=8.0, b=start, a=start + 30),
                settings={"grpo-sa-ecr": p})
    assert room in text
    g = p.grpo
    assert f"the completion cap is {g.max_completion_length} tokens" in text
    assert f"the length target is {g.length_target_tokens}" in text and f"reasons {start:.1f} tokens" in text
    if g.max_completion_length <= g.length_target_tokens:
        assert "the cap does not exceed the target" in text


def test_a_length_claim_without_a_length_reward_compares_the_cap_with_the_papers_effect():
    # E4b: Dr.GRPO has no length reward; Zhu's ratio applied to 60 tokens asks for 8.8 more, the cap 64 leaves 4
    text = para(row("E4b", diff=0.5, low=-1.0, high=2.0, mde=1.0, a=60.5, b=60.0),
                settings={"dr-grpo": study.arm_profile("cpu", "dr-grpo")})
    assert "No room for E4b at the paper's size" in text and "the paper's own figures point the other way" in text
    text = para(row("E4b", diff=0.5, low=-1.0, high=2.0, mde=1.0, a=20.5, b=20.0),
                settings={"dr-grpo": study.arm_profile("cpu", "dr-grpo")})
    assert "room for a change of the paper's size" in text


def test_no_shared_reasoning_is_reported_as_nothing_to_compare():
    nan = float("nan")
    r = row("E3a", diff=nan, low=nan, high=nan, mde=nan, paper_effect=nan, items=0, verdict="inconclusive",
            ours="no shared reasoning")
    text = para(r)
    assert "nothing to compare" in text and "not show" in text and "room" not in text


# -- scale settings, seeds, items and the start-model draw ------------------------------------------------------

@pytest.mark.parametrize("per_seed, words", [
    (False, "one draw shared by every seed"),     # the default: the interval lacks start-model variance
    (True, "its own draw of the start models"),
])
def test_the_start_model_draw_is_named(per_seed, words):
    profile = dataclasses.replace(CPU, standins=dataclasses.replace(CPU.standins, per_seed=per_seed))
    assert words in para(row("E1"), profile=profile)


def test_steps_seeds_and_items_come_from_the_settings_and_rows():
    text = para(row("E1", seeds=3, items=300))
    assert f"GRPO trained {CPU.grpo.max_steps} steps" in text and "Zhu et al.'s 1,500" in text
    assert "3 seeds and 300 test items" in text
    fewer = load_profile("cpu", {"grpo.max_steps": 7})
    text = para(row("E1", seeds=1, items=12), settings={"grpo-instruct": fewer})
    assert "GRPO trained 7 steps" in text and "1 seed and 12 test items" in text
    text = para(row("E6"), settings={"ood-grpo": study.arm_profile("cpu", "ood-grpo")})
    assert "MedVLM-R1's 300" in text  # E6 against MedVLM-R1's steps, read from configs/paper.yaml


@pytest.mark.parametrize("profile, budget", [
    (CPU, "set by hand (`sft.budget: steps`)"),                        # cpu: 80 steps, not matched to GRPO's
    (load_profile("cpu", {"sft.budget": "grpo"}), "a budget matched to"),
])
def test_supervised_claims_name_the_sft_budget(profile, budget):
    text = para([row("E5a"), row("E5c")], profile=profile)
    assert budget in text and "full SFT" in text and "DPO" in text
    assert "budget" not in para(row("E4a"), profile=profile)  # no supervised arm, no budget sentence


@pytest.mark.parametrize("formats, named", [
    ({"grpo-base": 31.0, "grpo-instruct": 98.0}, "Only 31% of base + GRPO's"),  # below 50%: named
    ({"grpo-base": 72.0, "grpo-instruct": 98.0}, None),                        # above: not
    (None, None),
])
def test_a_low_share_of_well_formed_answers_is_named(formats, named):
    text = para(row("E1"), formats=formats)
    assert (named in text) if named else ("well-formed" not in text)


# -- nothing hard-coded: change a figure of the row, the text follows ------------------------------------------

def test_the_numbers_come_from_the_row():
    one = para(row("E2", diff=3.2, low=1.1, high=5.3, mde=2.0, a=61.2, b=58.0))
    two = para(row("E2", diff=-7.9, low=-9.4, high=-6.4, mde=2.5, a=50.1, b=58.0))
    assert one != two
    assert "+3.2 points" in one and "+1.1 to +5.3" in one and "61.2% accurate against 58.0%" in one
    assert "-7.9 points" in two and "-9.4 to -6.4" in two and "+3.2" not in two
    assert "reversed" in two and "reversed" not in one
    # every number in the text is a row's, a setting's or the paper's: none left over from another call
    assert not set(re.findall(r"\d+\.\d", two)) & {"3.2", "1.1", "5.3", "61.2"}


def test_a_multi_claim_chapter_leads_with_its_answer():
    rows = [row("E3a", diff=40.0, low=20.0, high=60.0, mde=9.0, b=25.0, a=65.0),   # holds
            row("E3b", diff=0.5, low=-2.0, high=3.0, mde=2.0),                       # no effect of the paper's size
            row("E3c", diff=-6.0, low=-9.0, high=-3.0, mde=2.0)]                     # reversed
    text = para(rows, settings=conclusions.arm_settings("cpu", ["grpo-sa-ecr", "grpo-sa-cwr"]))
    lead = text.split("**")[1]
    assert lead.startswith("The miniature shows 1 of the 3 claims of this chapter (E3a)")
    assert "for E3b it excludes an effect as large as the paper's" in lead and "for E3c it finds the opposite" in lead


def test_a_row_from_evaluate_claim_reads_through():
    def run(correct):  # one seed's records on 40 shared items
        return Run(path=None, config={}, metrics={},
                   records=[{"id": f"i{k}", "modality": "MRI", "correct": k < correct} for k in range(40)])
    claim = next(c for c in CLAIMS if c.id == "E1")
    r = evaluate_claim(claim, [run(30), run(31), run(29)], [run(10), run(12), run(11)], n_boot=200)
    text = para(r, profile=SMOKE)
    assert f"{r['diff']:+.1f} points" in text and "the claim holds here" in text and "3 seeds and 40 test items" in text


# -- the summary's paragraph ------------------------------------------------------------------------------------

def test_the_study_paragraph_counts_verdicts_and_names_detectable_claims():
    rows = [row("E1", diff=30.0, low=20.0, high=40.0, mde=12.0),     # holds, though it could not detect 6.5
            row("E2", diff=0.5, low=-3.0, high=4.0, mde=5.0),        # inconclusive, could not detect 1.8
            row("E5a", diff=-2.0, low=-7.0, high=2.0, mde=6.5),      # smaller than the paper's, could not detect 6.0
            row("E4a", diff=0.0, low=-2.0, high=2.0, mde=2.0),       # no effect of the paper's size, detectable
            row("E6", diff=1.0, low=-4.0, high=6.0, mde=7.0)]        # no effect of the paper's size, detectable
    cal = [r if r["check"] != "C4" else cal_row("C4", met=False) for r in ALL_MET]
    text = conclusions.study_paragraph(rows, calibration=cal, profile=CPU)
    assert text.startswith("**Of the 5 claims tested, 1 holds, 1 is smaller than the paper's, 2 show no effect of "
                           "the paper's size and 1 is inconclusive.**")
    assert "could have shown an effect of the paper's size for E4a and E6" in text
    assert "could not have shown an effect of the paper's size for E1, E2 and E5a" in text
    assert "E1 holds all the same" in text and "E4a and E6 exclude an effect of the paper's size, evidence" in text
    assert "E5a excludes an effect of the paper's size all the same" in text
    assert "for E2 a verdict short of *holds* says nothing" in text
    assert "Calibration check C4" in text and "E1 rests on it" in text
    assert "Zhu et al.'s 1,500" in text and "MedVLM-R1's 300" in text


# -- helpers the notebooks call ---------------------------------------------------------------------------------

def test_format_shares_skip_plain_prompt_arms():
    good, bad = "<think>r</think>\n<answer>A</answer>", "A"
    grpo = Run(path=None, config={"kind": "grpo"}, metrics={},
               records=[{"completion": good}] * 3 + [{"completion": bad}])
    sft = Run(path=None, config={"kind": "sft", "settings": {"sft": {"target": "plain"}}}, metrics={},
              records=[{"completion": bad}])
    assert conclusions.format_shares({"grpo-instruct": [grpo, grpo], "sft": [sft]}) == {"grpo-instruct": 75.0}


def test_calibration_rows_are_computed_as_the_summary_did(monkeypatch):
    import medrl_lib.training.evaluate

    calls = {}
    fake = {a: [f"{a}-{s}" for s in (0,)] for a in ("grpo-instruct", "grpo-base", "ood-grpo", "ood-sft")}
    monkeypatch.setattr(study, "run_arms", lambda prof, arms, seeds, ov, force: calls.setdefault(
        "arms", (arms, seeds, force)) and {a: fake[a] for a in arms})
    monkeypatch.setattr(study, "zero_shot", lambda prof, which, group, ov, force: f"{which}-{group}")
    monkeypatch.setattr(study, "test_split", lambda prof, group, ov: f"test-{group}")
    monkeypatch.setattr(medrl_lib.training.evaluate, "random_guess_accuracy", lambda ds: {"from": ds})
    monkeypatch.setattr(conclusions, "calibration_rows", lambda **kw: kw)
    kw, runs = conclusions._calibration_rows("smoke", None, False, list(SMOKE.seeds))
    assert runs == ["instruct-ood", "instruct-zhu", "base-zhu", *(r for a in fake for r in fake[a])]
    assert calls["arms"] == (["grpo-instruct", "grpo-base", "ood-grpo", "ood-sft"], list(SMOKE.seeds), False)
    mri_trained = {study.LABELS[a]: fake[a] for a in ("ood-grpo", "ood-sft")}
    assert kw == {"ood_start": "instruct-ood", "instruct_start": "instruct-zhu", "base_start": "base-zhu",
                  "grpo_instruct": fake["grpo-instruct"], "grpo_base": fake["grpo-base"], "mri_trained": mri_trained,
                  "chance": {"from": "test-ood"}, "in_domain": SMOKE.data.train_modalities,
                  "n_boot": SMOKE.eval.n_boot, "seed": SMOKE.eval.bootstrap_seed}


def test_calibration_rows_are_stored_once_and_recomputed_when_anything_they_rest_on_changes(monkeypatch, tmp_path):
    runs = []
    for name in ("grpo-instruct", "base-zero-shot"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text('{"eval/accuracy/all": 50.0}')
        runs.append(Run(path=tmp_path / name, config={}, metrics={}))
    computed = []

    def compute(profile, overrides, force, seeds):
        computed.append(list(seeds))
        return [{"check": "C1", "verdict": "met", "ours": f"{len(computed)}"}], runs

    monkeypatch.setattr(conclusions, "_calibration_rows", compute)
    ov = {"results_dir": str(tmp_path / "store")}
    first = conclusions.calibration_for("smoke", ov)
    assert (tmp_path / "store" / "smoke" / "calibration.json").exists()
    # table: what happens next -> how many computations in all, and the rows' "ours" (which computation made them)
    assert conclusions.calibration_for("smoke", ov) == first and len(computed) == 1  # unchanged: read back
    (tmp_path / "grpo-instruct" / "metrics.json").write_text('{"eval/accuracy/all": 51.0}')  # a run was retrained
    assert conclusions.calibration_for("smoke", ov)[0]["ours"] == "2"
    assert conclusions.calibration_for("smoke", ov, seeds=[7])[0]["ours"] == "3"  # other seeds
    assert conclusions.calibration_for("smoke", {**ov, "eval.n_boot": 7})[0]["ours"] == "4"  # other settings
    assert conclusions.calibration_for("smoke", {**ov, "eval.n_boot": 7}, force=True)[0]["ours"] == "5"  # forced
    (tmp_path / "store" / "smoke" / "calibration.json").write_text('{"stamp": ')  # torn file: recomputed
    assert conclusions.calibration_for("smoke", {**ov, "eval.n_boot": 7})[0]["ours"] == "6"
    assert conclusions.calibration_for("smoke", {**ov, "eval.n_boot": 7})[0]["ours"] == "6"  # and stored again


def test_arms_that_score_alike_on_every_item_say_nothing():
    # the smoke profile's degenerate case: both arms 0% on every item, an interval and a detectable effect of 0
    text = para(row("E1", diff=0.0, low=0.0, high=0.0, mde=0.0, a=0.0, b=0.0, items=12, seeds=1))
    assert "score alike on every test item" in text and "could have shown" not in text
    assert "cannot tell" in text.split("**")[1]
    # a constant, non-zero difference is an effect, not a lack of data
    text = para(row("E1", diff=100.0, low=100.0, high=100.0, mde=0.0, a=100.0, b=0.0))
    assert "the claim holds here" in text and "could have shown" in text


def test_checks_not_met_on_the_same_claims_share_one_sentence():
    cal = [cal_row(c, met=c == "C2") for c in ("C1", "C2", "C3", "C4")]
    text = para(row("E1"), calibration=cal)
    assert "Calibration checks C1 (what C1 checks: not met, figure of C1), C3 (" in text
    assert "and C4 (what C4 checks: not met, figure of C4) are not met; E1 rests on them" in text
    assert text.count("Calibration check") == 1 and "But calibration checks C1, C3 and C4" in text  # and the lead


def test_chapter_closing_is_the_paragraph_of_the_stored_calibration_formats_and_settings(monkeypatch):
    cal = [cal_row("C4", met=False)]
    monkeypatch.setattr(conclusions, "calibration_for", lambda prof, ov, seeds=None: cal)
    rows = [row("E1")]
    runs = {"grpo-base": [], "grpo-instruct": []}
    got = conclusions.chapter_closing("smoke", rows, runs, ["grpo-base", "grpo-instruct"])
    assert got == conclusions.chapter_paragraph(rows, calibration=cal, profile=SMOKE, formats={},
                                                settings=conclusions.arm_settings("smoke", ["grpo-base", "grpo-instruct"]))
    assert "C4" in got  # E1 rests on C4, which is not met here


# -- the start model and the plain prompt -----------------------------------------------------------------------

def acc_run(accuracy, kind="grpo", target=None):
    """A stored run with only what the plain-prompt caveat reads: its accuracy and how it was asked."""
    settings = {"sft": {"target": target}} if target else {}
    return Run(path=None, config={"kind": kind, "settings": settings}, metrics={"eval/accuracy/all": accuracy},
               records=[])


def start_runs(zero_shot, start, dpo=(10.0, 12.0)):
    return {"zero-shot": [acc_run(zero_shot, kind="zero-shot")], "start": [acc_run(start, kind="zero-shot")],
            "grpo-instruct": [acc_run(56.0), acc_run(57.0)], "sft": [acc_run(57.0, "sft", "plain")],
            "dpo": [acc_run(a, "dpo", "plain") for a in dpo], "ood-sft": [acc_run(50.0, "sft", "plain")]}


def test_plain_start_reads_the_start_rows_and_the_plain_prompt_arms_of_the_group():
    got = conclusions.plain_start(start_runs(0.0, 40.0), "zhu")
    # grpo-instruct is asked with the reasoning prompt; ood-sft belongs to the other paper
    assert got == {"group": "zhu", "zero_shot": 0.0, "start": 40.0, "arms": {"sft": 57.0, "dpo": 11.0}}
    assert conclusions.plain_start({"grpo-instruct": [acc_run(56.0)]}, "zhu") is None  # no start rows: nothing


@pytest.mark.parametrize("cid, zero_shot, dpo, named", [
    ("E5c", 0.0, (10.0, 12.0), "DPO (11.0%) stays below"),   # cannot answer the plain prompt, DPO below the start
    ("E5c", 0.0, (50.0, 52.0), "learns that answer as well as the task."),  # cannot, but DPO rises above the start
    ("E5a", 3.0, (10.0, 12.0), "full SFT learns that answer"),  # E5a's plain arm is SFT; DPO is not in its claims
    ("E5c", 35.0, (10.0, 12.0), None),                        # answers the plain prompt (35 of 40): no caveat
    ("E1", 0.0, (10.0, 12.0), None),                          # no plain-prompt arm in the claim: no caveat
])
def test_the_start_models_plain_prompt_answers_are_named_when_it_cannot_give_them(cid, zero_shot, dpo, named):
    plain = [conclusions.plain_start(start_runs(zero_shot, 40.0, dpo), "zhu")]
    text = para(row(cid), plain=plain)
    if named is None:
        assert "plain prompt" not in text
    else:
        assert (f"the start model answers {zero_shot:.1f}% of the test items correctly, against 40.0% with the "
                "reasoning prompt (Zhu et al.'s start model: 47.29% with the plain prompt)") in text
        assert named in text


def test_the_study_closing_is_the_study_paragraph_with_its_plain_prompt_caveat(monkeypatch):
    runs = start_runs(0.0, 40.0)
    zero, start = runs.pop("zero-shot")[0], runs.pop("start")[0]
    rows = [row("E5c"), row("E6")]
    got = conclusions.study_closing("smoke", rows, runs, {"zhu": (zero, start), "ood": (zero, start)}, ALL_MET)
    plain = [conclusions.plain_start({"zero-shot": [zero], "start": [start], **runs}, g) for g in ("zhu", "ood")]
    assert got == conclusions.study_paragraph(rows, calibration=ALL_MET, profile=SMOKE,
                                              formats=conclusions.format_shares(runs),
                                              settings=conclusions.arm_settings("smoke", list(runs)), plain=plain)
    assert "Zhu et al.'s start model: 47.29%" in got and "MedVLM-R1's start model: 55.11%" in got


@pytest.mark.parametrize("cid, diff, low, high, words", [
    ("E3a", 3.2, 1.4, 4.9, "the interval lies wholly below the paper's 110.9 tokens"),   # ECR: +3 tokens, not x5
    ("E5c", 45.8, 40.5, 51.2, "the interval lies wholly above its 11.1 points"),           # far beyond the paper's
    ("E4a", 2.0, 0.5, 3.5, None),                      # holds, and the paper's 3.1 lies inside: nothing to add
    ("E3b", -3.0, -5.0, -1.0, "the interval lies wholly below the paper's 9.7 points"),  # a cost: direction -1
    ("E4a", 0.5, -1.0, 2.0, None),                     # does not hold: no sentence on its size
])
def test_a_claim_that_holds_says_whether_the_papers_size_holds_too(cid, diff, low, high, words):
    text = para(row(cid, diff=diff, low=low, high=high, mde=2.0, b=26.1 if cid == "E3a" else 57.0),
                settings=conclusions.arm_settings("cpu", ["grpo-sa-ecr"]))
    if words is None:
        assert "What holds" not in text
    else:
        assert words in text and text.count("What holds") == 1
