"""Rule-based rewards for multiple-choice medical VQA: ``format_reward`` and ``accuracy_reward``.

Both follow TRL's custom reward signature ``f(completions, <dataset columns>, **kwargs) -> list[float]``:
TRL (``GRPOTrainer._calculate_rewards``) passes every dataset column as a list with one entry per
completion, plus ``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra`` and ``log_metric``;
those extras are accepted and ignored through ``**kwargs``. TRL logs each reward as
``rewards/<__name__>/mean``, hence the plain function names.

Design
------
* **Pure and total.** A reward never raises on what the model wrote: any string (huge, unicode,
  nested or unbalanced tags) and any conversational wrapper (``None`` content, odd parts) scores a
  float. Only caller errors raise ``ValueError``: mismatched list lengths (the failure mode where a
  reward receives another row's solution) and a gold answer that is not one of the item's letters.
* **Linear time.** Tags are located with ``str.count``/``str.find``; the regular expressions are
  character classes, optional characters and fixed-width look-arounds with no nested quantifiers,
  so nothing backtracks. A 1 MB completion scores in a few tens of milliseconds at most.
* **Completions** may be plain strings or TRL's conversational form, a list of message dicts
  ``[{"role": "assistant", "content": ...}]`` whose content is a string, ``None`` or a list of parts
  ``[{"type": "text", "text": ...}]``; :func:`completion_text` normalises them.

Format (STUDY.md section 5, MedVLM-R1's paper)
----------------------------------------------
``<think>``, ``</think>``, ``<answer>``, ``</answer>`` each occur exactly once, in that order, and
nothing but whitespace lies outside the two blocks; block contents may span lines (the DOTALL
failure mode). Tags are case-sensitive: ``<THINK>`` is ordinary text, so it lies outside the
blocks and breaks the format. Empty blocks are format-valid, because the paper's rule is about
the tags only: an empty ``<think></think>`` earns the format reward (reasoning length is measured
and rewarded elsewhere), and an empty ``<answer></answer>`` earns the format reward but 0 accuracy,
so an empty answer can never collect the full reward.

Accuracy (STUDY.md section 5, following the paper, not MedVLM-R1's public code)
---------------------------------------------------------------------------------
The content of the ``<answer>`` block is scored; a unique answer block (exactly one ``<answer>``
followed by exactly one ``</answer>``) is required, a well-formed completion is not
(:data:`ACCURACY_REQUIRES_FORMAT` is ``False``): format is rewarded separately, and coupling the two
would pay a correct answer nothing whenever the format slips. Letters are capital ASCII letters;
the item's letters are ``A`` up to its number of options. With the content stripped of whitespace:

* **1.0**: exactly the gold letter, optionally preceded by ``(`` and followed by ``)`` and/or ``.``:
  ``B``, ``(B)``, ``B.``, ``B)``, ``(B).``.
* **0.5**: the gold letter plus explanation: the content starts with the gold letter (optionally
  after ``(``), the letter is followed by a non-word character (a separator such as ``)``, ``.``,
  ``:``, ``-`` or a space), more text with at least one letter or digit follows, and no *other*
  option letter of the item appears in that text as a standalone token (a capital letter with no
  letter, digit or underscore on either side). Strict reading: ``"B. A nodule in ..."`` scores 0,
  because the capital ``A`` is indistinguishable from a second choice; a lowercase article
  ``"B. a nodule"`` does not count, nor do letters inside words (``"CT"``, ``"T2"``) or capital
  letters beyond the item's options.
* **0.5**: the gold option's text instead of the letter: case-insensitive exact match after
  replacing every non-alphanumeric character with a space and collapsing whitespace
  (``"pulmonary nodule."`` matches ``"Pulmonary Nodule"``); it must not equally match another option.
  An answer more than 4 times as long as the longest option (plus one) is never taken for an
  option's text: this only excludes degenerate padding and keeps megabyte outputs fast.
* **0.0** otherwise: a wrong letter (letters beyond the item's options included), several letters
  (``"A, B"``, ``"A or B"``, ``"B and C"``), the answer phrased as a sentence (``"The answer is B"``),
  another option's text, an empty answer, no unique answer block, or any other wrapping (``"**B**"``).

Where MedVLM-R1's public code (``open_r1/grpo.py`` of JZPeterPan/MedVLM-R1) differs: it takes the
first ``<answer>...</answer>`` match (case-insensitive, repeated blocks allowed), upper-cases the
whole answer and counts *every* character A-J in it, inside words included, giving 0 unless exactly
one occurs. Its nominal 0.5 tier (correct letter plus leftover text) is therefore reachable only
when the leftover text has no letter a-j: ``"B."`` and ``"(B)"`` get 0.5 there (1.0 here), while
``"B) Pulmonary nodule"`` gets 0 there (0.5 here); option text instead of a letter gets 0 there.
Its format regex ``<think>.*?</think>\\s*<answer>.*?</answer>`` (fullmatch, DOTALL) accepts
repeated blocks and rejects leading or trailing whitespace; ours rejects repeated blocks and
accepts surrounding whitespace.

:func:`extract_choice` is the letter extractor for the plain (non-reasoning) baseline prompt.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Union

__all__ = [
    "ACCURACY_REQUIRES_FORMAT",
    "ANSWER_CLOSE",
    "ANSWER_OPEN",
    "THINK_CLOSE",
    "THINK_OPEN",
    "Completion",
    "Parsed",
    "accuracy_reward",
    "answer_score",
    "completion_text",
    "extract_choice",
    "format_reward",
    "parse_completion",
]

Completion = Union[str, Sequence[Mapping[str, Any]], None]
"""A completion as TRL passes it: a string, or a list of message dicts (conversational form)."""

ACCURACY_REQUIRES_FORMAT: Final[bool] = False
"""Default of ``accuracy_reward(require_format=...)``: accuracy needs a unique answer block only."""

THINK_OPEN: Final = "<think>"
THINK_CLOSE: Final = "</think>"
ANSWER_OPEN: Final = "<answer>"
ANSWER_CLOSE: Final = "</answer>"

_LETTERS: Final = string.ascii_uppercase
# A lone letter, as in "B", "(B)", "B.", "B)" (matched against the whole stripped answer).
_BARE_LETTER: Final = re.compile(r"\(?([A-Z])\)?\.?")
# A leading capital letter, optionally after "(", that is not part of a word ("B) ..." but not "Bone").
_LEADING_LETTER: Final = re.compile(r"\(?([A-Z])(?!\w)")
_ALNUM: Final = re.compile(r"[^\W_]")
_NON_ALNUM_RUN: Final = re.compile(r"[\W_]+")
# An answer longer than this many times (the longest option + 1) is not taken for an option's
# text; the bound spares normalising megabytes of degenerate output (see the module docstring).
_OPTION_TEXT_SLACK: Final = 4


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


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 for each well-formed completion (see :func:`parse_completion`), else 0.0.

    >>> format_reward([
    ...     "<think>\\nThe lesion is hyperintense.\\n</think>\\n<answer>B</answer>",  # multi-line
    ...     "  <think></think><answer></answer>\\n",  # empty blocks, surrounding whitespace
    ...     "<think>a</think><think>b</think><answer>B</answer>",  # repeated tag
    ...     "Sure! <think>a</think><answer>B</answer>",  # text outside the blocks
    ...     [{"role": "assistant", "content": "<think>a</think><answer>B</answer>"}],
    ... ])
    [1.0, 1.0, 0.0, 0.0, 1.0]
    """
    return [1.0 if parse_completion(completion_text(c)).well_formed else 0.0 for c in completions]


def _normalise_text(text: str) -> str:
    """Casefold, replace non-alphanumerics by spaces, collapse whitespace."""
    return _NON_ALNUM_RUN.sub(" ", text.casefold()).strip()


def _option_letters(n_options: int) -> str:
    """``"ABCD"`` for four options; ``ValueError`` outside 1..26."""
    if not 1 <= n_options <= len(_LETTERS):
        raise ValueError(f"number of options must be between 1 and {len(_LETTERS)}, got {n_options}")
    return _LETTERS[:n_options]


def _standalone(letters: str) -> re.Pattern[str]:
    """A capital letter among ``letters`` with no word character on either side.

    The look-behind follows the letter (``(?<!\\w.)`` checks the character before it) so that
    the pattern starts with a character class, which the regex engine scans for quickly.
    """
    return re.compile(rf"[{letters}](?<!\w.)(?!\w)")


def answer_score(answer: str | None, gold: str, options: Sequence[str]) -> float:
    """Score the content of an ``<answer>`` block against one item (tiers in the module docstring).

    ``gold`` is the gold letter (case and surrounding whitespace ignored), ``options`` the option
    texts in letter order. ``answer`` is ``None`` when there is no unique answer block.
    Raises ``ValueError`` if ``gold`` is not one of the item's letters.

    >>> options = ["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal"]
    >>> [answer_score(a, "B", options) for a in ["B", " (B) ", "B) Pulmonary nodule", "pulmonary nodule"]]
    [1.0, 1.0, 0.5, 0.5]
    >>> [answer_score(a, "B", options) for a in ["C", "A or B", "B. A nodule", "E", "", None]]
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    letters = _option_letters(len(options))
    gold_letter = gold.strip().upper()
    if len(gold_letter) != 1 or gold_letter not in letters:
        raise ValueError(f"gold answer {gold!r} is not one of the option letters {letters!r}")
    if answer is None:
        return 0.0
    content = answer.strip()
    bare = _BARE_LETTER.fullmatch(content)
    if bare:
        return 1.0 if bare.group(1) == gold_letter else 0.0
    leading = _LEADING_LETTER.match(content)
    if leading and leading.group(1) == gold_letter:
        rest = content[leading.end() :]
        others = letters.replace(gold_letter, "")
        if _ALNUM.search(rest) and not (others and _standalone(others).search(rest)):
            return 0.5
    if len(content) > _OPTION_TEXT_SLACK * (1 + max(len(option) for option in options)):
        return 0.0
    normalised = _normalise_text(content)
    matches = [i for i, option in enumerate(options) if normalised and _normalise_text(option) == normalised]
    return 0.5 if matches == [letters.index(gold_letter)] else 0.0


def accuracy_reward(
    completions: Sequence[Completion],
    answer: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    require_format: bool = ACCURACY_REQUIRES_FORMAT,
    **kwargs: Any,
) -> list[float]:
    """Accuracy of each completion's ``<answer>`` block: 1.0, 0.5 or 0.0 (see the module docstring).

    ``answer`` holds the gold letter per row, ``options`` the option texts (no letter prefixes)
    per row, both aligned with ``completions``. With ``require_format=True`` a completion that is
    not well-formed scores 0 (default :data:`ACCURACY_REQUIRES_FORMAT`: a unique answer block
    suffices). Raises ``ValueError`` on length mismatch or a gold letter outside a row's options.

    >>> options = [["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal"]] * 6
    >>> accuracy_reward([
    ...     "<think>Round opacity.</think><answer>B</answer>",  # exact letter
    ...     "<think>Round opacity.</think><answer>B) Pulmonary nodule</answer>",  # letter + text
    ...     "<think>Round opacity.</think><answer>Pulmonary nodule</answer>",  # option text
    ...     "<think>Round opacity.</think><answer>A or B</answer>",  # several letters
    ...     "Round opacity. <answer>B</answer>",  # format broken, answer block unique
    ...     "<think>Round opacity.</think><answer></answer>",  # empty answer
    ... ], answer=["B"] * 6, options=options)
    [1.0, 0.5, 0.5, 0.0, 1.0, 0.0]
    """
    if not len(completions) == len(answer) == len(options):
        raise ValueError(
            f"length mismatch: {len(completions)} completions, {len(answer)} answers, {len(options)} option lists"
        )
    rewards: list[float] = []
    for row, (completion, gold, row_options) in enumerate(zip(completions, answer, options)):
        parsed = parse_completion(completion_text(completion))
        content = parsed.answer if parsed.well_formed or not require_format else None
        try:
            rewards.append(answer_score(content, gold, row_options))
        except ValueError as error:
            raise ValueError(f"row {row}: {error}") from error
    return rewards


def extract_choice(text: str, n_options: int) -> str | None:
    """The single letter chosen in a plain (non-reasoning) answer, or ``None``.

    Candidates are the item's letters (``A`` up to ``n_options``) that appear as standalone capital
    tokens: no letter, digit or underscore on either side. Exactly one distinct candidate is the
    choice; zero or several give ``None``. Lowercase letters (the article "a") and letters inside
    words are ignored; so are capital letters beyond the item's options. A sentence-initial
    capital article ("A nodule ..., so B") makes the answer ambiguous and gives ``None``.
    MedVLM-R1's public evaluation instead compares the whole raw output with the letter.

    >>> [extract_choice(t, 4) for t in ["B", "B.", "(B)", "The answer is B", "Answer: B) nodule"]]
    ['B', 'B', 'B', 'B', 'B']
    >>> [extract_choice(t, 4) for t in ["", "a nodule", "A or B", "E", "B, then B again"]]
    [None, None, None, None, 'B']
    """
    letters = _option_letters(n_options)
    found = [letter for letter in letters if _standalone(letter).search(text)]
    return found[0] if len(found) == 1 else None
