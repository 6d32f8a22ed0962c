"""What a policy wrote: completion text, the ``<think>``/``<answer>`` blocks, and the letter it chose.

Every reward (:mod:`medrl_lib.rl.rewards`), the evaluation (:mod:`medrl_lib.training.evaluate`) and the metrics
(:mod:`medrl_lib.scoring.metrics`) read completions through this module, so "well-formed" and "the answer letter" have one
definition each.

Design
------
* **Total.** Nothing here raises on what the model wrote: any string (huge, unicode, nested or unbalanced tags) and
  any conversational wrapper (``None`` content, odd parts) parses. Only caller errors raise ``ValueError`` (an
  option count outside 1..26).
* **Linear time.** Tags are located with ``str.count``/``str.find``; the regular expressions are character classes,
  optional characters and fixed-width look-arounds with no nested quantifiers, so nothing backtracks. A 1 MB
  completion parses in a few tens of milliseconds at most.
* **Completions** may be plain strings or TRL's conversational form, a list of message dicts
  ``[{"role": "assistant", "content": ...}]`` whose content is a string, ``None`` or a list of parts
  ``[{"type": "text", "text": ...}]``; :func:`completion_text` normalises them.

Format (MedVLM-R1's paper, Pan et al. 2025, section 3)
------------------------------------------------------
:func:`well_formed`: ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each occur exactly once, in that order,
and nothing but whitespace lies outside the two blocks; block contents may span lines (the DOTALL failure mode).
Tags are case-sensitive: ``<THINK>`` is ordinary text, so it lies outside the blocks and breaks the format. Empty
blocks are format-valid, because the paper's rule is about the tags only (reasoning length is measured and rewarded
elsewhere; an empty answer earns no accuracy). MedVLM-R1's public code (``open_r1/grpo.py`` of JZPeterPan/MedVLM-R1)
uses the format regex ``<think>.*?</think>\\s*<answer>.*?</answer>`` (fullmatch, DOTALL), which accepts repeated
blocks and rejects leading or trailing whitespace; ours rejects repeated blocks and accepts surrounding whitespace.

Answer letters (MedVLM-R1 section 4 and its public evaluation script)
----------------------------------------------------------------------
Letters are capital ASCII letters; an item's letters are ``A`` up to its number of options (:func:`option_letters`).
In evaluation an item is right or wrong: :func:`answer_letter` is MedVLM-R1's evaluation rule for the reasoning
prompt (the first match of ``<answer>\\s*([A-Z])\\s*</answer>``; the item is correct when that letter is the gold
letter) and :func:`medrl_lib.training.evaluate.score_completion` applies it (with the format check of :func:`well_formed` by
default). :func:`extract_choice` is the lenient letter extractor for the plain (non-reasoning) baseline prompt, kept
as a named alternative to MedVLM-R1's exact match.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union

__all__ = [
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "EVAL_ANSWER_PATTERN",
    "THINK_CLOSE",
    "THINK_OPEN",
    "Completion",
    "Parsed",
    "answer_letter",
    "completion_text",
    "extract_choice",
    "option_letters",
    "parse_completion",
    "standalone_letter",
    "well_formed",
]

Completion = Union[str, Sequence[Mapping[str, Any]], None]
"""A completion as TRL passes it: a string, or a list of message dicts (conversational form)."""

THINK_OPEN: Final = "<think>"
THINK_CLOSE: Final = "</think>"
ANSWER_OPEN: Final = "<answer>"
ANSWER_CLOSE: Final = "</answer>"

_LETTERS: Final = string.ascii_uppercase  # an item with n options uses the first n (option_letters)

EVAL_ANSWER_PATTERN: Final = re.compile(r"<answer>\s*([A-Z])\s*</answer>")
"""MedVLM-R1's evaluation regex (``extract_letter_answer`` of its ``src/eval/test_qwen2vl_med.py``), searched
(``re.search``, first match, case-sensitive) in the whole completion: see :func:`answer_letter`."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """The result of :func:`parse_completion`.

    ``think`` and ``answer`` hold the raw block contents (not stripped) whenever that block is
    unique: its opening tag and its closing tag each occur exactly once, opening before closing.
    They are extracted even when the completion as a whole is not well-formed; otherwise ``None``.
    """

    think: str | None
    answer: str | None
    well_formed: bool


def _content_text(content: object) -> str:
    """Text of one message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") == "text":
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return "".join(texts)
    return ""


def completion_text(completion: object) -> str:
    """Normalise a completion to its text.

    A string is returned unchanged. A message dict, or a list of them (TRL's conversational form),
    gives the text of its assistant messages (a message without a role counts as one), joined by
    newlines; a content that is a list of parts contributes its text parts, concatenated. ``None``
    and anything unrecognised give ``""``. Never raises.

    >>> completion_text("<answer>B</answer>")
    '<answer>B</answer>'
    >>> completion_text([{"role": "assistant", "content": "<answer>B</answer>"}])
    '<answer>B</answer>'
    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "B"}]}])
    'B'
    >>> completion_text([{"role": "assistant", "content": None}])
    ''
    """
    if isinstance(completion, str):
        return completion
    messages: Sequence[object]
    if isinstance(completion, Mapping):
        messages = [completion]
    elif isinstance(completion, Sequence):
        messages = completion
    else:
        return ""
    texts = [
        _content_text(message.get("content"))
        for message in messages
        if isinstance(message, Mapping) and message.get("role") in (None, "assistant")
    ]
    return "\n".join(texts)


def _unique_block(text: str, open_tag: str, close_tag: str) -> tuple[int, int] | None:
    """``(start of content, index of close tag)`` if both tags occur once, open first; else None."""
    if text.count(open_tag) != 1 or text.count(close_tag) != 1:
        return None
    start = text.find(open_tag) + len(open_tag)
    end = text.find(close_tag)
    return (start, end) if end >= start else None


def parse_completion(text: str) -> Parsed:
    """Strictly parse ``<think>...</think><answer>...</answer>``.

    Well-formed means: each of the four tags occurs exactly once (case-sensitive), in the order
    think-open < think-close < answer-open < answer-close, and only whitespace lies before, between
    and after the two blocks. Contents may span lines and may be empty. See :class:`Parsed` for
    the extraction of blocks from completions that are not well-formed.

    >>> parse_completion("<think>\\nstep 1\\nstep 2\\n</think>\\n<answer>B</answer>\\n")
    Parsed(think='\\nstep 1\\nstep 2\\n', answer='B', well_formed=True)
    >>> parse_completion("<answer>B</answer><think>x</think>")
    Parsed(think='x', answer='B', well_formed=False)
    >>> parse_completion("<think>x</think><answer>A</answer><answer>B</answer>")
    Parsed(think='x', answer=None, well_formed=False)
    """
    think_block = _unique_block(text, THINK_OPEN, THINK_CLOSE)
    answer_block = _unique_block(text, ANSWER_OPEN, ANSWER_CLOSE)
    think = text[think_block[0] : think_block[1]] if think_block else None
    answer = text[answer_block[0] : answer_block[1]] if answer_block else None
    well_formed = False
    if think_block and answer_block:
        think_open = think_block[0] - len(THINK_OPEN)
        think_end = think_block[1] + len(THINK_CLOSE)
        answer_open = answer_block[0] - len(ANSWER_OPEN)
        answer_end = answer_block[1] + len(ANSWER_CLOSE)
        well_formed = (
            think_end <= answer_open
            and not text[:think_open].strip()
            and not text[think_end:answer_open].strip()
            and not text[answer_end:].strip()
        )
    return Parsed(think=think, answer=answer, well_formed=well_formed)


def well_formed(completion: Completion) -> bool:
    """Whether ``completion`` is well-formed: the format reward's rule, ``format_reward([completion])[0] == 1.0``.

    The one definition of "well-formed" for rates and checks: both blocks, each tag exactly once, think
    before answer, nothing but whitespace outside (:func:`parse_completion`). A unique ``<think>`` block alone
    is not enough (``parse_completion(c).think is not None`` counts completions that break the format).

    >>> [well_formed(c) for c in [
    ...     "<think>x</think>\\n<answer>B</answer>",  # both blocks
    ...     "<think>x</think> The answer is B.",  # a unique think block, no answer block
    ...     "<think>x</think><answer>B</answer> Done.",  # text outside the blocks
    ...     [{"role": "assistant", "content": "<think></think><answer></answer>"}],  # empty blocks are well-formed
    ... ]]
    [True, False, False, True]
    """
    return parse_completion(completion_text(completion)).well_formed


def option_letters(n_options: int) -> str:
    """The letters of an item with ``n_options`` options; ``ValueError`` outside 1..26.

    >>> option_letters(4)
    'ABCD'
    """
    if not 1 <= n_options <= len(_LETTERS):
        raise ValueError(f"number of options must be between 1 and {len(_LETTERS)}, got {n_options}")
    return _LETTERS[:n_options]


def standalone_letter(letters: str) -> re.Pattern[str]:
    """A capital letter among ``letters`` with no word character on either side.

    The look-behind follows the letter (``(?<!\\w.)`` checks the character before it) so that
    the pattern starts with a character class, which the regex engine scans for quickly.

    >>> [m.group() for m in standalone_letter("AB").finditer("A or B, not CT nor Bone")]
    ['A', 'B']
    """
    return re.compile(rf"[{letters}](?<!\w.)(?!\w)")


def answer_letter(completion: Completion) -> str | None:
    """The letter MedVLM-R1's evaluation reads: group 1 of the first match of :data:`EVAL_ANSWER_PATTERN`
    (``<answer>\\s*([A-Z])\\s*</answer>``) anywhere in the completion, or ``None``.

    Exactly one capital letter, surrounded by optional whitespace only, inside an answer block: ``"(B)"``,
    ``"B."``, ``"B) nodule"`` and ``"b"`` give None. The letter may lie beyond the item's options (``"Z"``):
    the caller compares it with the gold letter, so such an answer is wrong. The format is not checked here.

    >>> [answer_letter(c) for c in ["<think>x</think><answer> B\\n</answer>", "<answer>(B)</answer>",
    ...                             "<answer>B.</answer>", "<answer>Z</answer>", "B", "<answer>A</answer><answer>B</answer>"]]
    ['B', None, None, 'Z', None, 'A']
    """
    match = EVAL_ANSWER_PATTERN.search(completion_text(completion))
    return match.group(1) if match else None


def extract_choice(text: str, n_options: int) -> str | None:
    """The single letter chosen in a plain (non-reasoning) answer, or ``None``.

    Candidates are the item's letters (``A`` up to ``n_options``) that appear as standalone capital
    tokens: no letter, digit or underscore on either side. Exactly one distinct candidate is the
    choice; zero or several give ``None``. Lowercase letters (the article "a") and letters inside
    words are ignored; so are capital letters beyond the item's options. A sentence-initial
    capital article ("A nodule ..., so B") makes the answer ambiguous and gives ``None``.
    This is the *lenient* plain-prompt rule (``letter_rule="lenient"`` of
    :func:`medrl_lib.training.evaluate.score_completion`); by default the evaluation follows MedVLM-R1's public
    evaluation, which compares the whole output (here stripped of surrounding whitespace) with the letter.

    >>> [extract_choice(t, 4) for t in ["B", "B.", "(B)", "The answer is B", "Answer: B) nodule"]]
    ['B', 'B', 'B', 'B', 'B']
    >>> [extract_choice(t, 4) for t in ["", "a nodule", "A or B", "E", "B, then B again"]]
    [None, None, None, None, 'B']
    """
    letters = option_letters(n_options)
    found = [letter for letter in letters if standalone_letter(letter).search(text)]
    return found[0] if len(found) == 1 else None
