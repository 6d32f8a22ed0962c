"""The oracle: a reasoning checked against the true facts of a synthetic item (the cpu profile's judges).

On synthetic items (:mod:`medrl_lib.data.synthetic`) the facts an image shows are known: its modality, its lesion
count, and each lesion's quadrant and size (the dataset's ``facts`` column). Two scorers read a reasoning against
them, with the same whole-word patterns:

* :class:`OracleJudge`, the semantic judge (Zhu et al. 2025, section 3.2, in place of an LLM judge): Yes iff the
  reasoning states at least one true fact and no false one;
* :class:`OracleThinkingScorer`, the thinking reward metric (Zhu et al. Appendix B, in place of Mistral-7B-Instruct):
  1 to 10 by the share of the facts stated right, each wrong statement cancelling a right one.

They stand in for the paper's LLM judges (:mod:`medrl_lib.rl.judges`, :mod:`medrl_lib.rl.thinking`) where no such model
can run; real-data items (facts ``"{}"``) raise ``ValueError``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from medrl_lib.common.checks import check_lengths
from medrl_lib.rl.thinking import ScoreResult

__all__ = ["OracleJudge", "OracleThinkingScorer", "oracle_thinking_score"]

_MODALITY_WORDS: Final = {"mri": r"mri", "ct": r"ct", "x-ray": r"x-?rays?"}
_WHOLE_WORD: Final = r"(?<!\w){}(?!\w)"


def _whole_word(pattern: str) -> re.Pattern[str]:
    """``pattern`` with no word character (letter, digit, underscore) on either side."""
    return re.compile(_WHOLE_WORD.format(pattern))


_QUADRANT_PATTERNS: Final = {
    q: _whole_word(r"[\s-]+".join(map(re.escape, q.split()))) for q in ("upper left", "upper right", "lower left", "lower right")
}
_NUMBER_WORDS: Final = ("none", "one", "two", "three", "four", "five")  # as medrl_lib.data.synthetic.NUMBER_WORDS
_COUNT_PATTERN: Final = _whole_word(r"(none|one|two|three|four|five)(?:\s+[a-z-]+)?\s+lesions?")


def _synthetic_facts(item: object, row: int) -> Mapping[str, Any]:
    """The parsed facts of one synthetic item, or ``ValueError``."""
    facts: object = item
    if isinstance(item, str):
        try:
            facts = json.loads(item)
        except json.JSONDecodeError as error:
            raise ValueError(f"row {row}: facts are not valid JSON: {item[:80]!r}") from error
    if not (isinstance(facts, Mapping) and {"modality", "n_lesions", "lesions"} <= facts.keys()):
        raise ValueError(
            f"row {row}: the oracle judge needs synthetic facts (modality, n_lesions, lesions), got"
            f" {str(item)[:80]!r}; real-data items have facts '{{}}': use an LLM judge for them"
        )
    return facts


def _statements(text: str, facts: Mapping[str, Any]) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """``(right, wrong)``: the distinct modality, count and quadrant statements of the lowercased ``text``, checked
    against the item's facts (the rules of :class:`OracleJudge`)."""
    right: set[tuple[str, ...]] = set()
    wrong: set[tuple[str, ...]] = set()
    modality = str(facts["modality"]).lower()
    words = dict(_MODALITY_WORDS)
    words.setdefault(modality, re.escape(modality))
    for name, pattern in words.items():
        if _whole_word(pattern).search(text):
            (right if name == modality else wrong).add(("modality", name))
    for match in _COUNT_PATTERN.finditer(text):
        (right if _NUMBER_WORDS.index(match.group(1)) == facts["n_lesions"] else wrong).add(("count", match.group(1)))
    occupied = {lesion.get("quadrant") for lesion in facts["lesions"]}
    for quadrant, pattern in _QUADRANT_PATTERNS.items():
        if pattern.search(text):
            (right if quadrant in occupied else wrong).add(("quadrant", quadrant))
    return right, wrong


def _grounded(reasoning: str, facts: Mapping[str, Any]) -> bool:
    """The oracle rule (see :class:`OracleJudge`): at least one true statement and no false one."""
    right, wrong = _statements(reasoning.lower(), facts)
    return bool(right) and not wrong


class OracleJudge:
    """A :class:`~medrl_lib.rl.judges.Judge` for synthetic items: checks the reasoning against the item's true facts.

    ``facts`` holds each item's ``facts`` JSON (:mod:`medrl_lib.data.synthetic`); the question is
    not used. Rule: in the lowercased reasoning, find the checked facts below; the reasoning is
    grounded iff it states **at least one true fact and no false fact**. Checked facts, each matched
    as whole words (no letter, digit or underscore on either side: ``"ct"`` in ``"correct"`` does
    not count):

    * **modality**: ``mri``, ``ct``, ``x-ray``/``xray`` (``x-rays``/``xrays`` too): the item's
      modality is true, any other of the three is false;
    * **quadrant**: ``upper left``, ``upper right``, ``lower left``, ``lower right`` (space(s) or
      hyphen between the words): true if a lesion lies in that quadrant, false if none does;
    * **count**: a count word ``none``, ``one``, ... ``five`` followed by ``lesion`` or ``lesions``,
      optionally with one word between (``"two lesions"``, ``"two hyperintense lesions"``, as
      :func:`~medrl_lib.data.synthetic.describe` words it): true iff it equals ``n_lesions``.

    Every mention counts, negated or not (``"no lesion in the upper right"`` states a quadrant);
    other phrasings (``"computed tomography"``, ``"a lesion"``, digits) are not checked. Items with
    facts ``"{}"`` (real data) or other non-synthetic facts raise ``ValueError``.

    >>> facts = json.dumps({"modality": "CT", "n_lesions": 1, "lesions": [{"quadrant": "upper left"}]})
    >>> OracleJudge()(["Where is the lesion?"] * 4, [
    ...     "A hypodense lesion in the upper left of this CT.",  # two true facts
    ...     "One lesion in the lower right.",  # true count, false quadrant
    ...     "The correct answer is the upper-left quadrant.",  # true quadrant; "correct" is not "ct"
    ...     "A lesion is visible.",  # no checked fact
    ... ], [facts] * 4)
    [True, False, True, False]
    """

    def __call__(self, questions: Sequence[str], reasonings: Sequence[str], facts: Sequence[str]) -> list[bool]:
        check_lengths(questions=questions, reasonings=reasonings, facts=facts)
        parsed = [_synthetic_facts(item, row) for row, item in enumerate(facts)]
        return [_grounded(str(reasoning), item) for reasoning, item in zip(reasonings, parsed)]


_SIZE_WORD: Final = _whole_word(r"(small|large)")
_CLAUSE_BREAK: Final = re.compile(r"[.;,:!?\n]")


def oracle_thinking_score(reasoning: str, facts: Mapping[str, Any]) -> int:
    """The 1-10 oracle score of ``reasoning`` against an item's synthetic ``facts`` (see :class:`OracleThinkingScorer`).

    >>> facts = {"modality": "CT", "n_lesions": 2, "lesions": [
    ...     {"quadrant": "upper left", "size": "small"}, {"quadrant": "lower right", "size": "large"}]}
    >>> from medrl_lib.data.synthetic import describe
    >>> [oracle_thinking_score(r, facts) for r in [
    ...     describe(facts),  # all 6 facts: 1 + 9 * 6/6
    ...     "Two lesions, upper left and lower right, on CT.",  # 4 of 6 facts: 1 + 9 * 4/6 = 7
    ...     "A CT image.",  # 1 of 6: 2.5, rounded half up to 3
    ...     "MRI, two lesions, upper left and lower right.",  # 3 right, 1 wrong: 1 + 9 * 2/6 = 4
    ...     "A large lesion in the upper left and a small lesion in the lower right.",  # 2 quadrants, 2 wrong sizes
    ...     "X-ray: three lesions in the upper right.",  # only wrong facts
    ...     "",  # nothing stated
    ... ]]
    [10, 7, 3, 4, 1, 1, 1]
    """
    text = reasoning.lower()
    sizes = {lesion["quadrant"]: lesion["size"] for lesion in facts["lesions"]}
    right, wrong = _statements(text, facts)
    for clause in _CLAUSE_BREAK.split(text):
        events = sorted(
            [(m.start(), "size", m.group(1)) for m in _SIZE_WORD.finditer(clause)]
            + [(m.start(), "quadrant", q) for q, pattern in _QUADRANT_PATTERNS.items()
               for m in pattern.finditer(clause)]
        )
        for (_, kind, size), (_, next_kind, quadrant) in zip(events, events[1:]):
            if kind == "size" and next_kind == "quadrant" and quadrant in sizes:
                (right if sizes[quadrant] == size else wrong).add(("size", quadrant, size))
    checkable = 2 + 2 * len(sizes)
    return math.floor(1.0 + 9.0 * max(0, len(right) - len(wrong)) / checkable + 0.5)


class OracleThinkingScorer:
    """Thinking reward for synthetic items: the reasoning checked against the item's true facts (cpu profile).

    Rule. The checkable facts of an item with ``n`` lesions are ``2 + 2n``: its modality, its lesion count,
    and for each lesion its quadrant and its size. In the lowercased reasoning, with the whole-word
    patterns of :class:`OracleJudge`, each distinct statement is *right* or *wrong*:

    * modality (``mri``, ``ct``, ``x-ray``/``xray``): right if it is the item's, wrong otherwise;
    * count (a count word then ``lesion(s)``, one word allowed between: ``"two hyperintense lesions"``):
      right if it equals the lesion count, wrong otherwise;
    * quadrant (``upper left``, ...): right if a lesion lies there, wrong otherwise;
    * size: ``small``/``large`` attached to the first quadrant that follows it in the same clause (clauses
      end at ``. ; , : ! ?`` and newlines) with no other size word between (``"a small lesion in the upper
      left"``): right if that quadrant's lesion has that size, wrong if it has the other size (a size
      attached to an empty quadrant adds nothing: the quadrant is already wrong).

    ``score = 1 + 9 × max(0, right − wrong) / (2 + 2n)``, rounded half up to an integer. Each wrong
    statement cancels a right one, so listing every modality or quadrant does not pay; ``right ≤ 2 + 2n``
    keeps the score within 1..10. As in the oracle judge, negated mentions count (``"no lesion in the upper
    right"`` states that quadrant) and other phrasings (digits, ``"computed tomography"``, a size after its
    quadrant) are not checked. :func:`~medrl_lib.data.synthetic.describe` of an item scores 10, a blank
    reasoning 1, a reasoning with only wrong facts 1. ``questions`` and ``references`` are ignored; real-data
    items (facts ``"{}"``) raise ``ValueError``. Never unparseable: the counts of the result are 0.

    >>> facts = '{"modality": "MRI", "n_lesions": 1, "lesions": [{"quadrant": "lower left", "size": "large"}]}'
    >>> OracleThinkingScorer()(["MRI: one large lesion in the lower left.", "CT"], facts=[facts, facts])
    ScoreResult(scores=[10, 1], n_unparseable=0, n_out_of_range=0, outputs=[])
    """

    def __call__(
        self,
        reasonings: Sequence[str | None],
        *,
        questions: Sequence[str] | None = None,
        references: Sequence[str] | None = None,
        facts: Sequence[str] | None = None,
    ) -> ScoreResult:
        if facts is None:
            raise ValueError("the oracle thinking scorer needs each item's synthetic facts")
        check_lengths(reasonings=reasonings, facts=facts)
        parsed = [_synthetic_facts(item, row) for row, item in enumerate(facts)]
        scores: list[int | None] = [oracle_thinking_score(r or "", f) for r, f in zip(reasonings, parsed)]
        return ScoreResult(scores, 0, 0)

