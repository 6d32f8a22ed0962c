"""Tests for medrl_lib.rl.oracle: the oracle judge and the oracle thinking scorer, which check a reasoning against a
synthetic item's true facts."""

from __future__ import annotations

import json

import pytest

from medrl_lib.rl.oracle import OracleJudge, OracleThinkingScorer
from medrl_lib.rl.thinking import ScoreResult


def facts_json(modality: str, lesions: list[tuple[str, str]]) -> str:
    """Synthetic facts with lesions ``(quadrant, size)``."""
    return json.dumps({"modality": modality, "question_type": "location", "n_lesions": len(lesions),
                       "lesions": [{"quadrant": q, "size": s, "side": q.split()[1]} for q, s in lesions]})


CT_TWO = facts_json("CT", [("upper left", "small"), ("lower right", "large")])  # 6 checkable facts
MRI_ONE = facts_json("MRI", [("lower left", "large")])  # 4 checkable facts
XRAY_THREE = facts_json("X-ray", [("upper left", "small"), ("upper right", "small"), ("lower left", "large")])  # 8
XRAY_ONE = facts_json("X-ray", [("upper right", "small")])  # 4 checkable facts


# ---------------------------------------------------------------------------------------------
# OracleJudge
# ---------------------------------------------------------------------------------------------

ORACLE_CASES = [
    pytest.param(CT_TWO, "A hypodense lesion in the upper left.", True, id="true-quadrant-only"),  # one true fact
    pytest.param(CT_TWO, "This CT shows a round finding.", True, id="true-modality-only"),  # one true fact
    pytest.param(CT_TWO, "Two lesions, upper left and lower right, on CT.", True, id="all-true"),  # several true facts
    pytest.param(CT_TWO, "two hypodense lesions are seen", True, id="count-with-adjective"),  # describe()'s wording
    pytest.param(CT_TWO, "Lesion in the UPPER-LEFT quadrant", True, id="case-and-hyphen"),  # lowercased, hyphen allowed
    pytest.param(CT_TWO, "The MRI shows a lesion in the upper left.", False, id="wrong-modality"),  # a false fact spoils it
    pytest.param(CT_TWO, "CT, lesion in the upper left; the x-ray agrees.", False, id="wrong-modality-xray"),  # x-ray is false here
    pytest.param(CT_TWO, "On this xray, upper left.", False, id="wrong-modality-xray-no-hyphen"),  # "xray" spelling
    pytest.param(CT_TWO, "Lesions in the upper left and upper right.", False, id="quadrant-without-lesion"),  # upper right is empty
    pytest.param(CT_TWO, "There are three lesions on this CT.", False, id="wrong-count"),  # n_lesions is 2
    pytest.param(CT_TWO, "One lesion in the upper left.", False, id="wrong-count-one"),  # n_lesions is 2
    pytest.param(CT_TWO, "A lesion is visible; the answer is B.", False, id="no-fact"),  # nothing checkable stated
    pytest.param(CT_TWO, "", False, id="empty"),  # nothing stated at all
    pytest.param(MRI_ONE, "The correct answer: MRI, lower left.", True, id="correct-is-not-ct"),  # "ct" inside "correct"
    pytest.param(MRI_ONE, "Actually, the lesion is in the lower left.", True, id="actually-is-not-ct"),  # "ct" inside "actually"
    pytest.param(MRI_ONE, "This is a CT. Lower left.", False, id="ct-whole-word"),  # "CT." is a whole word
    pytest.param(MRI_ONE, "The immersion shows a lesion.", False, id="mri-inside-word-no-fact"),  # "mri" only inside a word
    pytest.param(XRAY_ONE, "Chest X-ray: one opaque lesion in the upper right.", True, id="xray-true"),  # x-ray true here
    pytest.param(XRAY_ONE, "Chest x-rays show one lesion.", True, id="xray-plural"),  # plural spelling
    pytest.param(XRAY_ONE, "No lesion in the lower left; one lesion upper right.", False, id="negation-counts"),  # mentions count, negated or not
]


@pytest.mark.parametrize(("facts", "reasoning", "expected"), ORACLE_CASES)
def test_oracle_judge(facts: str, reasoning: str, expected: bool) -> None:
    assert OracleJudge()(["Where is the lesion?"], [reasoning], [facts]) == [expected]


@pytest.mark.parametrize("facts", ["{}", "", "not json", "[]", json.dumps({"modality": "CT"})])
def test_oracle_judge_needs_synthetic_facts(facts: str) -> None:
    # real data has facts "{}": the oracle cannot judge it and says so
    with pytest.raises(ValueError, match="oracle judge needs synthetic facts|not valid JSON"):
        OracleJudge()(["q"], ["CT, upper left"], [facts])


def test_oracle_judge_accepts_describe_of_generated_items() -> None:
    # the synthetic generator's own description of an image is grounded in its facts
    from medrl_lib.data.synthetic import SyntheticConfig, describe, generate

    data = generate(SyntheticConfig(n_items=6, modalities=("MRI", "CT", "X-ray"), image_size=28))
    reasonings = [describe(json.loads(f)) for f in data["facts"]]
    assert OracleJudge()(data["question"], reasonings, data["facts"]) == [True] * 6


def test_oracle_judge_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length mismatch"):
        OracleJudge()(["q", "q"], ["CT"], [CT_TWO])


# ---------------------------------------------------------------------------------------------
# the oracle thinking scorer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "reasoning", "expected"),
    [
        (CT_TWO, "CT image showing two hypodense lesions: a small lesion in the upper left and a large lesion in"
                 " the lower right.", 10),  # describe(): all 6 facts
        (CT_TWO, "", 1),  # nothing stated
        (CT_TWO, "A lesion is visible.", 1),  # nothing checkable
        (CT_TWO, "This CT", 3),  # 1 of 6: 1 + 1.5 = 2.5, half up
        (CT_TWO, "Two lesions on CT.", 4),  # 2 of 6: 1 + 3
        (CT_TWO, "Two lesions on CT, upper left and lower right.", 7),  # 4 of 6: 1 + 6
        (CT_TWO, "CT: small lesion in the upper left.", 6),  # ct, quadrant, size = 3 of 6: 5.5, half up
        (CT_TWO, "MRI with two lesions in the upper left and lower right.", 4),  # 3 right - 1 wrong modality
        (CT_TWO, "Two lesions in the upper left and upper right on CT.", 4),  # 3 right - 1 empty quadrant
        (CT_TWO, "Three lesions on CT.", 1),  # 1 right - 1 wrong count
        (CT_TWO, "MRI or CT or x-ray; upper left, upper right, lower left, lower right.", 1),  # shotgun: 3 right, 4 wrong
        (CT_TWO, "A large lesion in the upper left.", 1),  # right quadrant, wrong size
        (CT_TWO, "The upper left lesion is small.", 3),  # a size after its quadrant is not checked
        (CT_TWO, "X-ray, three lesions, lower left.", 1),  # only wrong facts
        (CT_TWO, "The correct answer is the upper-left quadrant.", 3),  # "ct" inside "correct" is no modality
        (MRI_ONE, "MRI: one large lesion in the lower left.", 10),  # all 4 facts
        (MRI_ONE, "One hyperintense lesion on MRI.", 6),  # 2 of 4: 5.5, half up
        (MRI_ONE, "No lesion in the upper right; a large lesion in the lower left.", 3),  # negated mention is wrong: 2 - 1
        (XRAY_THREE, "Chest x-ray with three opaque lesions.", 3),  # 2 of 8: 1 + 2.25 = 3.25 → 3
        (XRAY_THREE, "Small lesions in the upper left and upper right, a large one in the lower left.", 7),  # 5 of 8: 6.6
        # (3 quadrants, sizes of upper left and lower left; "upper right" follows a quadrant, not a size word)
    ],
)
def test_oracle_thinking_score(facts: str, reasoning: str, expected: int) -> None:
    assert OracleThinkingScorer()([reasoning], facts=[facts]) == ScoreResult([expected], 0, 0)


def test_oracle_thinking_describe_scores_ten_on_generated_items() -> None:
    from medrl_lib.data.synthetic import SyntheticConfig, describe, generate

    data = generate(SyntheticConfig(n_items=15, modalities=("MRI", "CT", "X-ray"), image_size=28, seed=3))
    reasonings = [describe(json.loads(f)) for f in data["facts"]]
    assert OracleThinkingScorer()(reasonings, facts=data["facts"]).scores == [10] * 15
    # a reasoning stating only wrong facts scores 1 on every item
    wrong = {"MRI": "CT", "CT": "X-ray", "X-ray": "MRI"}
    liars = [f"{wrong[json.loads(f)['modality']]} image with five lesions" for f in data["facts"]]
    assert OracleThinkingScorer()(liars, facts=data["facts"]).scores == [1] * 15


def test_oracle_thinking_needs_synthetic_facts() -> None:
    with pytest.raises(ValueError, match="synthetic facts"):
        OracleThinkingScorer()(["CT, upper left"], facts=["{}"])  # real data
    with pytest.raises(ValueError, match="synthetic facts"):
        OracleThinkingScorer()(["CT"], questions=["q"], references=["r"])  # no facts at all
    with pytest.raises(ValueError, match="length mismatch"):
        OracleThinkingScorer()(["CT", "MRI"], facts=[CT_TWO])
    assert OracleThinkingScorer()([None], facts=[CT_TWO]).scores == [1]  # a missing reasoning states nothing
