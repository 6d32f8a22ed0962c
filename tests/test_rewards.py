"""Tests for medrl_lib.rl.rewards: the format and accuracy rewards (MedVLM-R1 section 3), the semantic alignment,
ECR and CWR rewards (Zhu et al. sections 3.2 and 3.3)."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrl_lib.rl.completions import answer_letter, well_formed
from medrl_lib.rl.oracle import OracleJudge
from medrl_lib.rl.rewards import (
    ACCURACY_REQUIRES_FORMAT,
    AccuracyReward,
    CorrectnessWeightedLengthReward,
    ExtendedChainReward,
    SemanticAlignmentReward,
    accuracy_reward,
    answer_score,
    format_reward,
)

OPTIONS = ["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal"]  # gold "B" throughout unless stated
SIX_OPTIONS = ["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal", "Hepatitis", "Fracture"]
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
VALID_SCORES = {0.0, 0.5, 1.0}


def assistant(content: Any) -> list[dict[str, Any]]:
    """TRL's conversational completion form."""
    return [{"role": "assistant", "content": content}]


def wrap(answer: str, think: str = "The opacity is round and well defined.") -> str:
    """A well-formed completion with the given answer block content."""
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def facts_json(modality: str, quadrants: list[str]) -> str:
    """Synthetic facts as the dataset's ``facts`` column holds them."""
    lesions = [
        {"center": [0.3, 0.3], "radius": 0.045, "quadrant": q, "side": q.split()[1], "size": "small"} for q in quadrants
    ]
    return json.dumps({"modality": modality, "question_type": "location", "n_lesions": len(lesions), "lesions": lesions})


CT_TWO = facts_json("CT", ["upper left", "lower right"])  # CT, two lesions: upper left and lower right
MRI_ONE = facts_json("MRI", ["lower left"])  # MRI, one lesion in the lower left


def think(reasoning: str, answer: str = "B") -> str:
    """A well-formed completion."""
    return f"<think>{reasoning}</think>\n<answer>{answer}</answer>"


class RecordingJudge:
    """A fake judge that records its calls and says Yes iff the reasoning contains "good"."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str], list[str]]] = []

    def __call__(self, questions: list[str], reasonings: list[str], facts: list[str]) -> list[bool]:
        self.calls.append((list(questions), list(reasonings), list(facts)))
        return ["good" in r for r in reasonings]


class CharTokenizer:
    """A fake tokenizer with one token per character (picklable, module level)."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}


# ---------------------------------------------------------------------------------------------
# format_reward
# ---------------------------------------------------------------------------------------------

FORMAT_CASES = [
    pytest.param("<think>x</think><answer>B</answer>", 1.0, id="minimal"),  # the canonical form
    pytest.param("<think>\nstep 1\nstep 2\n</think>\n<answer>\nB\n</answer>", 1.0, id="multi-line"),  # DOTALL failure mode
    pytest.param("\n  <think>x</think><answer>B</answer>  \n", 1.0, id="outer-whitespace"),  # whitespace outside is allowed
    pytest.param("<think>x</think>\r\n\t <answer>B</answer>", 1.0, id="whitespace-between"),  # any whitespace between blocks
    pytest.param("<think></think><answer>B</answer>", 1.0, id="empty-think"),  # documented: empty blocks are format-valid
    pytest.param("<think>x</think><answer></answer>", 1.0, id="empty-answer"),  # format-valid, but 0 accuracy
    pytest.param("<think>Der Befund ist rund — 肺结节 ✓</think><answer>B</answer>", 1.0, id="unicode"),  # non-ASCII reasoning
    pytest.param("<think>a</think><think>b</think><answer>B</answer>", 0.0, id="repeated-think"),  # repeated tags score 0
    pytest.param("<think>a</think><answer>A</answer><answer>B</answer>", 0.0, id="repeated-answer"),  # answer hacking by hedging
    pytest.param("<answer>B</answer><think>x</think>", 0.0, id="answer-before-think"),  # order matters
    pytest.param("Sure! <think>x</think><answer>B</answer>", 0.0, id="text-before"),  # text outside the blocks
    pytest.param("<think>x</think><answer>B</answer> Hope this helps.", 0.0, id="text-after"),  # text outside the blocks
    pytest.param("<think>x</think> so <answer>B</answer>", 0.0, id="text-between"),  # text outside the blocks
    pytest.param("<think>x</think><answer>B", 0.0, id="missing-answer-close"),  # truncated generation
    pytest.param("x</think><answer>B</answer>", 0.0, id="missing-think-open"),  # missing open tag
    pytest.param("<think>x<answer>B</answer></think>", 0.0, id="answer-nested-in-think"),  # nested tags
    pytest.param("<think>x<answer></think>B</answer>", 0.0, id="interleaved"),  # blocks overlap
    pytest.param("</think>x<think><answer>B</answer>", 0.0, id="think-close-before-open"),  # inverted tags
    pytest.param("<THINK>x</THINK><ANSWER>B</ANSWER>", 0.0, id="uppercase-tags"),  # tags are case-sensitive
    pytest.param("< think >x</ think ><answer>B</answer>", 0.0, id="spaced-tags"),  # not the tag strings
    pytest.param("<think>x</think><answer><think>B</answer>", 0.0, id="stray-tag-inside"),  # a tag repeated inside a block
    pytest.param("<answer>B</answer>", 0.0, id="answer-only"),  # no reasoning block
    pytest.param("B", 0.0, id="bare-letter"),  # no tags at all
    pytest.param("", 0.0, id="empty"),  # empty completion
    pytest.param(assistant("<think>x</think><answer>B</answer>"), 1.0, id="conversational"),  # TRL message form
    pytest.param(assistant([{"type": "text", "text": "<think>x</think><answer>B</answer>"}]), 1.0, id="conversational-parts"),  # content as parts
    pytest.param(assistant(None), 0.0, id="conversational-none-content"),  # None content scores 0, no crash
]


@pytest.mark.parametrize(("completion", "expected"), FORMAT_CASES)
def test_format_reward(completion: Any, expected: float) -> None:
    assert format_reward([completion]) == [expected]


@pytest.mark.parametrize(("completion", "expected"), FORMAT_CASES)
def test_well_formed_is_the_format_reward_rule(completion: Any, expected: float) -> None:
    assert well_formed(completion) is (expected == 1.0)
    assert well_formed(completion) == (format_reward([completion])[0] == 1.0)


# ---------------------------------------------------------------------------------------------
# accuracy_reward
# ---------------------------------------------------------------------------------------------

ACCURACY_CASES = [
    pytest.param(wrap("B"), "B", OPTIONS, 1.0, id="exact-letter"),  # tier 1
    pytest.param(wrap("\n  B \n"), "B", OPTIONS, 1.0, id="exact-letter-whitespace"),  # whitespace is stripped
    pytest.param(wrap("(B)"), "B", OPTIONS, 1.0, id="exact-parenthesised"),  # allowed wrapping
    pytest.param(wrap("B."), "B", OPTIONS, 1.0, id="exact-trailing-dot"),  # allowed wrapping
    pytest.param(wrap("B)"), "B", OPTIONS, 1.0, id="exact-trailing-paren"),  # allowed wrapping
    pytest.param(wrap("B"), " b ", OPTIONS, 1.0, id="gold-letter-normalised"),  # gold case and whitespace ignored
    pytest.param(wrap("F"), "F", SIX_OPTIONS, 1.0, id="exact-sixth-option"),  # HuatuoGPT-Vision items have up to 6 options
    pytest.param(wrap("B) Pulmonary nodule"), "B", OPTIONS, 0.5, id="letter-paren-text"),  # tier 2; MedVLM-R1 code: 0
    pytest.param(wrap("B. because the opacity is round"), "B", OPTIONS, 0.5, id="letter-dot-explanation"),  # tier 2
    pytest.param(wrap("B: nodule"), "B", OPTIONS, 0.5, id="letter-colon-text"),  # tier 2, colon separator
    pytest.param(wrap("B - nodule"), "B", OPTIONS, 0.5, id="letter-dash-text"),  # tier 2, dash separator
    pytest.param(wrap("(B) Pulmonary nodule"), "B", OPTIONS, 0.5, id="parenthesised-letter-text"),  # tier 2
    pytest.param(wrap("B. a nodule in the lung"), "B", OPTIONS, 0.5, id="lowercase-article"),  # lowercase "a" is not a letter choice
    pytest.param(wrap("B) T2 hyperintense on CT"), "B", OPTIONS, 0.5, id="letters-inside-words"),  # "T2", "CT" are not tokens
    pytest.param(wrap("B) Hepatitis E"), "B", OPTIONS, 0.5, id="letter-beyond-options-in-text"),  # E is no option of a 4-option item
    pytest.param(wrap("pulmonary nodule"), "B", OPTIONS, 0.5, id="option-text"),  # tier 3
    pytest.param(wrap(" Pulmonary  Nodule. "), "B", OPTIONS, 0.5, id="option-text-normalised"),  # case/punctuation/space
    pytest.param(wrap("Pulmonary -- nodule!"), "B", OPTIONS, 0.5, id="option-text-punctuated"),  # punctuation runs collapse
    pytest.param(wrap("Pulmonary" + " ." * 100 + " nodule"), "B", OPTIONS, 0.0, id="option-text-padded"),  # > 4x longest option
    pytest.param(assistant(wrap("B")), "B", OPTIONS, 1.0, id="conversational-exact"),  # TRL message form
    pytest.param(assistant([{"type": "text", "text": wrap("B) Pulmonary nodule")}]), "B", OPTIONS, 0.5, id="conversational-parts"),  # parts form
    pytest.param("Round. <answer>B</answer>", "B", OPTIONS, 0.0, id="format-broken-answer-unique"),  # format first (default)
    pytest.param("<think>x<answer>B</answer></think>", "B", OPTIONS, 0.0, id="answer-nested-in-think"),  # not well-formed
    pytest.param(wrap("B. A nodule in the lung"), "B", OPTIONS, 0.0, id="capital-article-ambiguous"),  # strict reading
    pytest.param(wrap("B) Hepatitis E"), "B", SIX_OPTIONS, 0.0, id="other-option-letter-in-text"),  # E is an option here
    pytest.param(wrap("C"), "B", OPTIONS, 0.0, id="wrong-letter"),  # wrong letter
    pytest.param(wrap("C) Pneumothorax"), "B", OPTIONS, 0.0, id="wrong-letter-text"),  # wrong letter plus its text
    pytest.param(wrap("E"), "B", OPTIONS, 0.0, id="letter-beyond-options"),  # counts as a wrong letter
    pytest.param(wrap("A, B"), "B", OPTIONS, 0.0, id="several-letters-comma"),  # hedging
    pytest.param(wrap("A or B"), "B", OPTIONS, 0.0, id="several-letters-or"),  # hedging
    pytest.param(wrap("B and C"), "B", OPTIONS, 0.0, id="several-letters-and"),  # hedging, gold first
    pytest.param(wrap("Cyst"), "B", OPTIONS, 0.0, id="other-option-text"),  # a different option's text
    pytest.param(wrap("Pulmonary nodule or cyst"), "B", OPTIONS, 0.0, id="option-text-plus-more"),  # not an exact text match
    pytest.param(wrap("The answer is B"), "B", OPTIONS, 0.0, id="sentence"),  # not letter-led
    pytest.param(wrap("**B**"), "B", OPTIONS, 0.0, id="markdown-bold"),  # other wrappings score 0
    pytest.param(wrap("b"), "B", OPTIONS, 0.0, id="lowercase-letter"),  # letters are capitals
    pytest.param(wrap("B!!"), "B", OPTIONS, 0.0, id="letter-punctuation-only"),  # no explanation text
    pytest.param(wrap(""), "B", OPTIONS, 0.0, id="empty-answer"),  # empty answer earns nothing
    pytest.param("<think>B is right</think>", "B", OPTIONS, 0.0, id="no-answer-block"),  # no answer block
    pytest.param(wrap("B") + "<answer>B</answer>", "B", OPTIONS, 0.0, id="repeated-answer-block"),  # no unique block
    pytest.param("<think>x</think><answer>B", "B", OPTIONS, 0.0, id="unclosed-answer"),  # truncated generation
    pytest.param("<think>x</think><ANSWER>B</ANSWER>", "B", OPTIONS, 0.0, id="uppercase-answer-tags"),  # tags are case-sensitive
    pytest.param(assistant(None), "B", OPTIONS, 0.0, id="conversational-none-content"),  # no crash
]


@pytest.mark.parametrize(("completion", "gold", "options", "expected"), ACCURACY_CASES)
def test_accuracy_reward(completion: Any, gold: str, options: list[str], expected: float) -> None:
    assert accuracy_reward([completion], answer=[gold], options=[options]) == [expected]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("B.", 1.0, id="trailing-dot"),  # MedVLM-R1 code: 0.5 (leftover "." is extra text)
        pytest.param("(B)", 1.0, id="parenthesised"),  # MedVLM-R1 code: 0.5
        pytest.param("B) Pulmonary nodule", 0.5, id="letter-with-text"),  # MedVLM-R1 code: 0 (A, D, E found in words)
        pytest.param("Pulmonary nodule", 0.5, id="option-text"),  # MedVLM-R1 code: 0 (no 0.5 tier for option text)
    ],
)
def test_medvlm_r1_divergence(content: str, expected: float) -> None:
    """We follow the paper's tiers; MedVLM-R1's public code counts every A-J character, case-insensitively."""
    assert accuracy_reward([wrap(content)], answer=["B"], options=[OPTIONS]) == [expected]


def test_accuracy_rows_are_aligned() -> None:
    """Each completion is scored against its own row's gold letter and options (batch > 1 failure mode)."""
    completions = [wrap("A"), wrap("B"), wrap("Fracture"), wrap("A")]
    golds = ["A", "A", "F", "B"]
    options = [OPTIONS, OPTIONS, SIX_OPTIONS, OPTIONS]
    assert accuracy_reward(completions, answer=golds, options=options) == [1.0, 0.0, 0.5, 0.0]


REQUIRE_FORMAT_CASES = [
    # completion, gold, accuracy with require_format=True (MedVLM-R1's text), with False (its released code)
    pytest.param(wrap("B"), "B", 1.0, 1.0, id="well-formed-exact"),  # same either way
    pytest.param(wrap("B) Pulmonary nodule"), "B", 0.5, 0.5, id="well-formed-partial"),  # same either way
    pytest.param("Round. <answer>B</answer>", "B", 0.0, 1.0, id="text-before-answer"),  # no think block
    pytest.param("<think>x</think><answer>B</answer> Hope this helps.", "B", 0.0, 1.0, id="text-after"),  # outside text
    pytest.param("<answer>B) nodule</answer><think>x</think>", "B", 0.0, 0.5, id="wrong-order-partial"),  # order
    pytest.param("<think>x<answer>B</answer></think>", "B", 0.0, 1.0, id="answer-nested-in-think"),  # nested
    pytest.param("<think>a</think><think>b</think><answer>B</answer>", "B", 0.0, 1.0, id="repeated-think"),  # repeated tag
    pytest.param("Round. <answer>C</answer>", "B", 0.0, 0.0, id="broken-and-wrong"),  # wrong either way
    pytest.param(wrap("B") + "<answer>B</answer>", "B", 0.0, 0.0, id="repeated-answer"),  # no unique block either way
]


@pytest.mark.parametrize(("completion", "gold", "with_format", "without_format"), REQUIRE_FORMAT_CASES)
def test_require_format(completion: str, gold: str, with_format: float, without_format: float) -> None:
    assert ACCURACY_REQUIRES_FORMAT is True  # the default follows MedVLM-R1's text
    assert accuracy_reward([completion], answer=[gold], options=[OPTIONS]) == [with_format]
    assert accuracy_reward([completion], answer=[gold], options=[OPTIONS], require_format=True) == [with_format]
    assert accuracy_reward([completion], answer=[gold], options=[OPTIONS], require_format=False) == [without_format]
    assert AccuracyReward()([completion], answer=[gold], options=[OPTIONS]) == [with_format]
    assert AccuracyReward(require_format=False)([completion], answer=[gold], options=[OPTIONS]) == [without_format]


@pytest.mark.parametrize("require_format", [True, False])
def test_accuracy_reward_object_for_trl(require_format: bool) -> None:
    reward = pickle.loads(pickle.dumps(AccuracyReward(require_format=require_format)))
    assert reward.__name__ == "accuracy_reward" and reward.require_format is require_format
    extras = {"prompts": ["q"], "completion_ids": [[1]], "trainer_state": None, "question": ["q"],
              "require_format": not require_format}  # the bound setting wins over a stray keyword
    assert reward(["Round. <answer>B</answer>"], answer=["B"], options=[OPTIONS], **extras) == [
        0.0 if require_format else 1.0]


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_accuracy_reward_object_validates(value: Any) -> None:
    with pytest.raises(ValueError, match="require_format"):
        AccuracyReward(require_format=value)


def test_duplicate_option_text_is_ambiguous() -> None:
    assert answer_score("Nodule", "B", ["Cyst", "Nodule", "nodule."]) == 0.0


@pytest.mark.parametrize(
    ("answer", "options", "match"),
    [
        pytest.param(["B"], [OPTIONS, OPTIONS], "1 completions, 1 answers, 2 option lists", id="options-longer"),
        pytest.param(["B", "B"], [OPTIONS], "1 completions, 2 answers, 1 option lists", id="answers-longer"),
    ],
)
def test_length_mismatch(answer: list[str], options: list[list[str]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        accuracy_reward([wrap("B")], answer=answer, options=options)


@pytest.mark.parametrize("gold", ["E", "(B)", "", "AB"])
def test_invalid_gold_raises(gold: str) -> None:
    with pytest.raises(ValueError, match="row 0: gold answer"):
        accuracy_reward([wrap("B")], answer=[gold], options=[OPTIONS])


def test_trl_extra_kwargs_accepted() -> None:
    extras: dict[str, Any] = {
        "prompts": ["Which finding?"],
        "completion_ids": [[1, 2, 3]],
        "trainer_state": object(),
        "log_extra": lambda *args, **kwargs: None,
        "log_metric": lambda *args, **kwargs: None,
        "question": ["Which finding?"],  # other dataset columns arrive too
        "image": [None],
    }
    assert format_reward([wrap("B")], **extras) == [1.0]
    assert accuracy_reward([wrap("B")], answer=["B"], options=[OPTIONS], **extras) == [1.0]


def test_reward_names_for_trl_logging() -> None:
    assert format_reward.__name__ == "format_reward"
    assert accuracy_reward.__name__ == "accuracy_reward"


# ---------------------------------------------------------------------------------------------
# SemanticAlignmentReward
# ---------------------------------------------------------------------------------------------


def test_semantic_reward_asks_judge_once_in_order() -> None:
    judge = RecordingJudge()
    reward = SemanticAlignmentReward(judge)
    completions: list[Any] = [
        "<answer>B</answer>",  # no think block: 0, not sent
        think("  good reasoning  "),  # sent, stripped; Yes
        think("   \n "),  # empty think block: 0, not sent
        [{"role": "assistant", "content": think("bad reasoning")}],  # conversational form; sent; No
        "<think>a</think><think>b</think><answer>B</answer>",  # repeated think: no unique block, 0, not sent
        "<think>good but no answer</think>",  # think block without answer: sent; Yes
    ]
    questions = [f"q{i}" for i in range(6)]
    facts = [f"f{i}" for i in range(6)]
    assert reward(completions, question=questions, facts=facts, prompts=None, trainer_state=None) == [
        0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
    ]
    assert judge.calls == [
        (["q1", "q3", "q5"], ["good reasoning", "bad reasoning", "good but no answer"], ["f1", "f3", "f5"])
    ]


def test_semantic_reward_defaults_facts_and_skips_judge_without_reasoning() -> None:
    judge = RecordingJudge()
    reward = SemanticAlignmentReward(judge)
    assert reward(["no tags", "<answer>B</answer>", "", None], question=["q"] * 4) == [0.0] * 4
    assert judge.calls == []  # nothing to judge: the judge is not called
    assert reward([think("good")], question=["q"]) == [1.0]
    assert judge.calls == [(["q"], ["good"], ["{}"])]  # facts default to "{}"
    assert reward([], question=[]) == []


def test_semantic_reward_with_oracle_judge_and_pickling() -> None:
    reward = SemanticAlignmentReward(OracleJudge())
    completions = [think("One lesion in the lower left on MRI."), think("Lesion in the upper right."), "no tags"]
    expected = [1.0, 0.0, 0.0]
    assert reward(completions, question=["Where?"] * 3, facts=[MRI_ONE] * 3) == expected
    clone = pickle.loads(pickle.dumps(reward))
    assert clone(completions, question=["Where?"] * 3, facts=[MRI_ONE] * 3) == expected
    assert reward.__name__ == clone.__name__ == "semantic_reward"
    assert SemanticAlignmentReward.__name__ == "SemanticAlignmentReward"  # the class keeps its own name


def test_semantic_reward_caller_errors() -> None:
    reward = SemanticAlignmentReward(RecordingJudge())
    with pytest.raises(ValueError, match="length mismatch"):
        reward([think("x")], question=["q", "q"])
    with pytest.raises(ValueError, match="length mismatch"):
        reward([think("x")], question=["q"], facts=["{}", "{}"])
    with pytest.raises(ValueError, match="verdicts"):
        SemanticAlignmentReward(lambda q, r, f: [])([think("x")], question=["q"])  # a broken judge


# ---------------------------------------------------------------------------------------------
# ECR and CWR
# ---------------------------------------------------------------------------------------------

ECR_CASES = [
    # (completion, tokenizer, target, weight, expected)
    pytest.param(think("a b c"), None, 4, 1.0, 0.75, id="words-partial"),  # 3 words / 4
    pytest.param(think("a\nb\tc  d"), None, 4, 1.0, 1.0, id="words-any-whitespace"),  # 4 words: saturates at 1
    pytest.param(think("a b c d e f g h"), None, 4, 2.0, 2.0, id="words-capped-weighted"),  # min(8/4, 1) * 2
    pytest.param(think("one two"), None, 8, 0.5, 0.125, id="words-weight"),  # 0.5 * 2/8
    pytest.param(think("  \n "), None, 4, 1.0, 0.0, id="empty-think"),  # no words
    pytest.param("<answer>B</answer>", None, 4, 1.0, 0.0, id="no-think"),  # no think block
    pytest.param("<think>a</think><think>b</think>", None, 1, 1.0, 0.0, id="repeated-think"),  # no unique think block
    pytest.param("<think>a b</think>", None, 4, 1.0, 0.5, id="think-only"),  # the answer block is not needed
    pytest.param(think(" abcd "), CharTokenizer(), 8, 1.0, 0.5, id="tokens-stripped"),  # 4 chars (stripped) / 8
    pytest.param(think("ab cd"), CharTokenizer(), 10, 3.0, 1.5, id="tokens-weighted"),  # 3 * 5/10
    pytest.param([{"role": "assistant", "content": think("a b")}], None, 4, 1.0, 0.5, id="conversational"),
]


@pytest.mark.parametrize(("completion", "tokenizer", "target", "weight", "expected"), ECR_CASES)
def test_ecr(completion: Any, tokenizer: Any, target: int, weight: float, expected: float) -> None:
    reward = ExtendedChainReward(tokenizer, target_tokens=target, weight=weight)
    assert reward([completion]) == [pytest.approx(expected)]


CWR_CASES = [
    # (completion, gold, expected) with target 4, weight 1, whitespace words
    pytest.param(think("a b", "B"), "B", 0.5, id="correct"),  # paid: 2/4
    pytest.param(think("a b c d e", "(B)"), "B", 1.0, id="correct-parenthesised-capped"),  # strict 1.0 accuracy; capped
    pytest.param(think("a b", "C"), "B", 0.0, id="wrong-letter"),  # not paid
    pytest.param(think("a b", "B) Pulmonary nodule"), "B", 0.0, id="half-credit"),  # 0.5 accuracy: not paid
    pytest.param(think("a b", "Pulmonary nodule"), "B", 0.0, id="option-text"),  # 0.5 accuracy: not paid
    pytest.param(think("a b", ""), "B", 0.0, id="empty-answer"),  # not paid
    pytest.param("<think>a b</think>", "B", 0.0, id="missing-answer"),  # no answer block
    pytest.param("<answer>B</answer>", "B", 0.0, id="correct-no-think"),  # correct, but no reasoning to pay
    pytest.param("<think>a b</think><answer>A</answer><answer>B</answer>", "B", 0.0, id="repeated-answer"),  # hedging
    pytest.param("<think>a b</think> so <answer>B</answer>", "B", 0.0, id="correct-not-well-formed"),  # format first
]


@pytest.mark.parametrize(("completion", "gold", "expected"), CWR_CASES)
def test_cwr(completion: str, gold: str, expected: float) -> None:
    reward = CorrectnessWeightedLengthReward(target_tokens=4)
    assert reward([completion], answer=[gold], options=[OPTIONS], trainer_state=None) == [pytest.approx(expected)]


@pytest.mark.parametrize(
    ("completion", "with_format", "without_format"),
    [
        pytest.param(think("a b", "B"), 0.5, 0.5, id="well-formed"),  # paid either way
        pytest.param("<think>a b</think> so <answer>B</answer>", 0.0, 0.5, id="text-between"),  # format broken
        pytest.param("<think>a b</think><answer>B</answer> Done.", 0.0, 0.5, id="text-after"),  # format broken
        pytest.param("<answer>B</answer><think>a b</think>", 0.0, 0.5, id="wrong-order"),  # format broken
        pytest.param("<think>a b</think> so <answer>C</answer>", 0.0, 0.0, id="wrong-either-way"),  # wrong letter
    ],
)
def test_cwr_require_format(completion: str, with_format: float, without_format: float) -> None:
    """CWR's correctness follows the accuracy reward's setting (give both the same)."""
    kwargs = {"answer": ["B"], "options": [OPTIONS]}
    assert CorrectnessWeightedLengthReward(target_tokens=4)([completion], **kwargs) == [with_format]
    assert CorrectnessWeightedLengthReward(target_tokens=4, require_format=False)([completion], **kwargs) == [
        without_format]
    with pytest.raises(ValueError, match="require_format"):
        CorrectnessWeightedLengthReward(require_format="no")  # type: ignore[arg-type]


def test_cwr_with_tokenizer_and_caller_errors() -> None:
    reward = CorrectnessWeightedLengthReward(CharTokenizer(), target_tokens=10, weight=2.0)
    assert reward([think("abcde"), think("abcde", "A")], answer=["B", "B"], options=[OPTIONS] * 2) == [1.0, 0.0]
    with pytest.raises(ValueError, match="row 0"):
        reward([think("x")], answer=["E"], options=[OPTIONS])  # gold outside the options
    with pytest.raises(ValueError, match="length mismatch"):
        reward([think("x")], answer=["B", "B"], options=[OPTIONS])


@pytest.mark.parametrize("cls", [ExtendedChainReward, CorrectnessWeightedLengthReward])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_tokens": 0}, "target_tokens"),
        ({"target_tokens": -5}, "target_tokens"),
        ({"target_tokens": 2.5}, "target_tokens"),
        ({"target_tokens": True}, "target_tokens"),
        ({"weight": -0.1}, "weight"),
        ({"weight": math.nan}, "weight"),
        ({"weight": math.inf}, "weight"),
        ({"weight": "1"}, "weight"),
        ({"tokenizer": 42}, "tokenizer"),
    ],
)
def test_length_reward_validation(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A Hugging Face fast tokenizer trained here on a few report sentences (as a policy's tokenizer)."""
    from transformers import AutoTokenizer

    from medrl_lib.models.loading import train_tokenizer

    corpus = ["A bright lesion in the upper left.", "Two dark lesions in the lower right.", "It is small."] * 20
    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(corpus, vocab_size=300).save_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def test_length_rewards_names_and_pickling(hf_tokenizer: Any) -> None:
    tokenizer = hf_tokenizer
    text = "A bright lesion in the upper left."
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    ecr = ExtendedChainReward(tokenizer, target_tokens=1000, weight=2.0)
    cwr = CorrectnessWeightedLengthReward(tokenizer, target_tokens=1000, weight=2.0)
    assert ecr([think(text)]) == [pytest.approx(2.0 * n / 1000)]
    for reward, name, kwargs in [
        (ecr, "ecr_reward", {}),
        (cwr, "cwr_reward", {"answer": ["B"], "options": [OPTIONS]}),
    ]:
        clone = pickle.loads(pickle.dumps(reward))
        assert reward.__name__ == clone.__name__ == name
        assert clone([think(text)], **kwargs) == reward([think(text)], **kwargs) == [pytest.approx(2.0 * n / 1000)]
    assert ExtendedChainReward().target_tokens == 200 and ExtendedChainReward().weight == 1.0  # defaults


# ---------------------------------------------------------------------------------------------
# Robustness: never raise, bounded outputs, linear time
# ---------------------------------------------------------------------------------------------

tagged_text = st.lists(
    st.one_of(st.sampled_from([*TAGS, "A", "B", "(B)", "B.", " ", "\n", "<", ">", "/"]), st.text(max_size=12)),
    max_size=30,
).map("".join)
any_text = st.one_of(st.text(), tagged_text)
completions_strategy = st.one_of(
    any_text,
    any_text.map(assistant),
    any_text.map(lambda t: assistant([{"type": "text", "text": t}, {"type": "image"}])),
    any_text.map(lambda t: {"role": "assistant", "content": t}),
    st.just(assistant(None)),
    st.just(assistant([{"type": "text", "text": None}])),
    st.none(),
)


@st.composite
def item(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A gold letter and its item's options (1 to 6 arbitrary texts)."""
    options = draw(st.lists(st.one_of(st.text(max_size=20), tagged_text), min_size=1, max_size=6))
    gold = draw(st.sampled_from("ABCDEF"[: len(options)]))
    return gold, options


@settings(max_examples=300, deadline=None)
@given(completions=st.lists(completions_strategy, min_size=1, max_size=4), data=st.data())
def test_rewards_total_and_bounded(completions: list[Any], data: st.DataObject) -> None:
    items = [data.draw(item()) for _ in completions]
    formats = format_reward(completions)
    accuracies = accuracy_reward(completions, answer=[g for g, _ in items], options=[o for _, o in items])
    for scores in (formats, accuracies):
        assert len(scores) == len(completions)
        assert all(type(s) is float and s in VALID_SCORES for s in scores)


@pytest.mark.parametrize(
    ("completion", "expected_format", "expected_accuracy", "expected_letter"),
    [
        pytest.param("<think>" * 150_000 + "<answer>B</answer>", 0.0, 0.0, "B", id="repeated-think-tags"),  # 150k repeated tags
        pytest.param("<think>x</think><answer>" + "B " * 500_000 + "</answer>", 1.0, 0.5, None, id="letter-spam"),  # gold only
        pytest.param("<think>x</think><answer>" + "B " * 500_000 + "A</answer>", 1.0, 0.0, None, id="letter-spam-hedged"),  # one A
        pytest.param("<answer>" + "B " * 500_000, 0.0, 0.0, None, id="unclosed-answer"),  # no answer block
        pytest.param("<think>x</think><answer>" + "(" * 1_000_000 + "B</answer>", 1.0, 0.0, None, id="paren-spam"),  # regex stress
        pytest.param(wrap("x" * 1_000_000), 1.0, 0.0, None, id="long-word"),  # option-text normalisation stress
    ],
)
def test_megabyte_completions(completion: str, expected_format: float, expected_accuracy: float,
                              expected_letter: str | None) -> None:
    assert len(completion) >= 1_000_000
    assert format_reward([completion]) == [expected_format]
    assert accuracy_reward([completion], answer=["B"], options=[OPTIONS]) == [expected_accuracy]
    assert answer_letter(completion) == expected_letter  # the evaluation regex is linear too, and reads one letter


def test_megabyte_completion_without_format_requirement() -> None:
    completion = "<think>" * 150_000 + "<answer>B</answer>"  # 150k repeated tags, a unique answer block
    assert accuracy_reward([completion], answer=["B"], options=[OPTIONS], require_format=False) == [1.0]


# ---------------------------------------------------------------------------------------------
# Totality: the new rewards never raise on what the model wrote
# ---------------------------------------------------------------------------------------------

PIECES = st.sampled_from(TAGS + ["A", "B", "(B)", " ", "\n", "lesion", "two lesions", "upper left", "CT", "x-ray", "<<<", ">>>"])
COMPLETIONS = st.one_of(st.text(max_size=200), st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=20).map("".join))


@settings(max_examples=200, deadline=None)
@given(completions=st.lists(COMPLETIONS, min_size=1, max_size=4), question=st.text(max_size=30))
def test_new_rewards_are_total(completions: list[str], question: str) -> None:
    n = len(completions)
    weight = 2.5
    results = {
        "semantic-fake": SemanticAlignmentReward(RecordingJudge())(completions, question=[question] * n),
        "semantic-oracle": SemanticAlignmentReward(OracleJudge())(completions, question=[question] * n, facts=[CT_TWO] * n),
        "ecr": ExtendedChainReward(target_tokens=3, weight=weight)(completions),
        "ecr-chars": ExtendedChainReward(CharTokenizer(), target_tokens=7, weight=weight)(completions),
        "cwr": CorrectnessWeightedLengthReward(target_tokens=3, weight=weight)(
            completions, answer=["B"] * n, options=[OPTIONS] * n
        ),
    }
    for name, rewards in results.items():
        bound = 1.0 if name.startswith("semantic") else weight
        assert len(rewards) == n, name
        assert all(type(r) is float and 0.0 <= r <= bound for r in rewards), (name, rewards)
