"""Tests for medrl_lib.rewards: the format and accuracy rewards (MedVLM-R1 section 3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pickle

from medrl_lib.rewards import (
    ACCURACY_REQUIRES_FORMAT,
    AccuracyReward,
    Parsed,
    accuracy_reward,
    answer_letter,
    answer_score,
    completion_text,
    extract_choice,
    format_reward,
    parse_completion,
    well_formed,
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


@pytest.mark.parametrize(
    ("completion", "has_think", "expected"),
    [
        pytest.param("<think>x</think><answer>B</answer>", True, True, id="both-blocks"),  # well-formed
        pytest.param("<think>x</think> The answer is B", True, False, id="think-only"),  # a think block is not the format
        pytest.param("<think>x</think><answer>B</answer> Done.", True, False, id="text-after"),  # text outside
        pytest.param("<answer>B</answer><think>x</think>", True, False, id="wrong-order"),  # order matters
        pytest.param("<think>x</think><answer>B", True, False, id="truncated"),  # unclosed answer block
        pytest.param("<answer>B</answer>", False, False, id="answer-only"),  # no think block
    ],
)
def test_well_formed_is_not_a_think_block(completion: str, has_think: bool, expected: bool) -> None:
    assert (parse_completion(completion).think is not None) is has_think  # the old, looser count
    assert well_formed(completion) is expected


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


ANSWER_LETTER_CASES = [
    # MedVLM-R1's evaluation regex <answer>\s*([A-Z])\s*</answer>, first match anywhere
    pytest.param(wrap("B"), "B", id="bare"),  # the letter
    pytest.param(wrap("\n B \t"), "B", id="whitespace"),  # whitespace inside the block
    pytest.param(wrap("(B)"), None, id="parenthesised"),  # not a lone letter
    pytest.param(wrap("B."), None, id="dot"),  # not a lone letter
    pytest.param(wrap("B) Pulmonary nodule"), None, id="letter-text"),  # a reward's 0.5, no letter here
    pytest.param(wrap("b"), None, id="lowercase"),  # capital letters only
    pytest.param(wrap("Z"), "Z", id="beyond-options"),  # read; the caller finds it wrong
    pytest.param(wrap("AB"), None, id="two-letters"),  # one letter only
    pytest.param("<answer>A</answer><answer>B</answer>", "A", id="first-match"),  # re.search: the first
    pytest.param("Round. <answer>B</answer>", "B", id="format-not-checked"),  # the caller checks the format
    pytest.param("<ANSWER>B</ANSWER>", None, id="uppercase-tags"),  # case-sensitive
    pytest.param("B", None, id="no-block"),  # no answer block
    pytest.param(assistant(wrap("C")), "C", id="conversational"),  # TRL message form
]


@pytest.mark.parametrize(("completion", "expected"), ANSWER_LETTER_CASES)
def test_answer_letter(completion: Any, expected: str | None) -> None:
    assert answer_letter(completion) == expected


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
# parse_completion, completion_text, extract_choice
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<think> a </think><answer> B </answer>", Parsed(" a ", " B ", True), id="raw-contents"),  # not stripped
        pytest.param("x<think>a</think>y<answer>B</answer>z", Parsed("a", "B", False), id="extracted-when-malformed"),  # unique blocks
        pytest.param("<think>a<think>b</think><answer>B</answer>", Parsed(None, "B", False), id="think-not-unique"),  # no think
        pytest.param("</answer>B<answer>", Parsed(None, None, False), id="answer-inverted"),  # close before open
    ],
)
def test_parse_completion(text: str, expected: Parsed) -> None:
    assert parse_completion(text) == expected


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        pytest.param("plain", "plain", id="string"),  # unchanged
        pytest.param(None, "", id="none"),  # no completion
        pytest.param({"role": "assistant", "content": "x"}, "x", id="single-message"),  # a bare message dict
        pytest.param(assistant([{"type": "image"}, {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]), "ab", id="parts"),  # text parts only
        pytest.param([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "a", id="assistant-only"),  # other roles dropped
        pytest.param([{"content": "a"}, {"role": "assistant", "content": "b"}], "a\nb", id="messages-joined"),  # roleless counts as assistant
        pytest.param(assistant([{"type": "text", "text": None}, 3, "s"]), "s", id="odd-parts"),  # junk parts ignored
        pytest.param(42, "", id="unrecognised"),  # not a completion
    ],
)
def test_completion_text(completion: Any, expected: str) -> None:
    assert completion_text(completion) == expected


@pytest.mark.parametrize(
    ("text", "n_options", "expected"),
    [
        pytest.param("B", 4, "B", id="bare"),  # the ideal baseline output
        pytest.param("B.", 4, "B", id="dot"),  # trailing punctuation
        pytest.param("(B)", 4, "B", id="parenthesised"),  # wrapped
        pytest.param("The answer is B", 4, "B", id="sentence"),  # capitals inside words are not letters
        pytest.param("Answer: B) nodule", 4, "B", id="answer-prefix"),  # letter plus text
        pytest.param("<answer>B</answer>", 4, "B", id="tagged"),  # tags do not matter here
        pytest.param("B, then B again", 4, "B", id="repeated-same-letter"),  # one distinct letter
        pytest.param("this is a nodule", 4, None, id="lowercase-article"),  # no capital letter
        pytest.param("A or B", 4, None, id="two-letters"),  # ambiguous
        pytest.param("A nodule, so B", 4, None, id="capital-article"),  # documented: ambiguous
        pytest.param("F", 4, None, id="beyond-options"),  # not a letter of this item
        pytest.param("F", 6, "F", id="six-options"),  # within a 6-option item
        pytest.param("", 4, None, id="empty"),  # nothing chosen
    ],
)
def test_extract_choice(text: str, n_options: int, expected: str | None) -> None:
    assert extract_choice(text, n_options) == expected


@pytest.mark.parametrize("n_options", [0, 27])
def test_extract_choice_rejects_bad_option_count(n_options: int) -> None:
    with pytest.raises(ValueError, match="number of options"):
        extract_choice("B", n_options)


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


@settings(max_examples=300, deadline=None)
@given(text=any_text, n_options=st.integers(min_value=1, max_value=26))
def test_extract_choice_total(text: str, n_options: int) -> None:
    choice = extract_choice(text, n_options)
    assert choice is None or (choice in text and "A" <= choice < chr(ord("A") + n_options))


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
