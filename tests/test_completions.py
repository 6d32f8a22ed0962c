"""Tests for medrl_lib.rl.completions: completion text, the <think>/<answer> blocks, the format rule and the answer
letter (MedVLM-R1 sections 3 and 4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medrl_lib.rl.completions import Parsed, answer_letter, completion_text, extract_choice, parse_completion, well_formed

TAGS = ["<think>", "</think>", "<answer>", "</answer>"]


def assistant(content: Any) -> list[dict[str, Any]]:
    """TRL's conversational completion form."""
    return [{"role": "assistant", "content": content}]


def wrap(answer: str, think: str = "The opacity is round and well defined.") -> str:
    """A well-formed completion with the given answer block content."""
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


# ---------------------------------------------------------------------------------------------
# well_formed: the format rule, not a <think> block
# ---------------------------------------------------------------------------------------------


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
# answer_letter: MedVLM-R1's evaluation regex
# ---------------------------------------------------------------------------------------------

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
# Robustness: never raise, linear time
# ---------------------------------------------------------------------------------------------

tagged_text = st.lists(
    st.one_of(st.sampled_from([*TAGS, "A", "B", "(B)", "B.", " ", "\n", "<", ">", "/"]), st.text(max_size=12)),
    max_size=30,
).map("".join)
any_text = st.one_of(st.text(), tagged_text)


@settings(max_examples=300, deadline=None)
@given(text=any_text, n_options=st.integers(min_value=1, max_value=26))
def test_extract_choice_total(text: str, n_options: int) -> None:
    choice = extract_choice(text, n_options)
    assert choice is None or (choice in text and "A" <= choice < chr(ord("A") + n_options))
