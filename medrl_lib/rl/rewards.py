"""The GRPO rewards for multiple-choice medical VQA, and the names a profile may weight.

* ``format_reward`` and ``accuracy_reward`` (:class:`AccuracyReward`): MedVLM-R1's rule-based rewards (Pan et al.
  2025, section 3);
* :class:`SemanticAlignmentReward`: Zhu et al. 2025's semantic alignment reward (section 3.2), asking a judge
  (:class:`medrl_lib.rl.judges.LLMJudge`, or :class:`medrl_lib.rl.oracle.OracleJudge` on synthetic items);
* :class:`ExtendedChainReward` (ECR) and :class:`CorrectnessWeightedLengthReward` (CWR): Zhu et al.'s length rewards
  (section 3.3);
* :data:`REWARD_NAMES`: the rewards ``grpo.reward_weights`` may name (built from a profile by
  :func:`medrl_lib.training.reward_funcs.build_reward_funcs`). The choices the papers leave open are listed on the book's Methods page (``book/methods.md``).

All follow TRL's custom reward signature ``f(completions, <dataset columns>, **kwargs) -> list[float]``: TRL
(``GRPOTrainer._calculate_rewards``) passes every dataset column as a list with one entry per completion, plus
``prompts``, ``completion_ids``, ``trainer_state``, ``log_extra`` and ``log_metric``; those extras are accepted and
ignored through ``**kwargs``. TRL logs each reward as ``rewards/<__name__>/mean``, hence the plain names
(``semantic_reward``, ``ecr_reward``, ``cwr_reward`` for the reward objects).

Design
------
* **Pure and total.** A reward never raises on what the model wrote: any string (huge, unicode, nested or
  unbalanced tags) and any conversational wrapper scores a float. Only caller errors raise ``ValueError``:
  mismatched list lengths (the failure mode where a reward receives another row's solution) and a gold answer that
  is not one of the item's letters.
* **Linear time**, as the parsing it rests on (:mod:`medrl_lib.rl.completions`: the format rule, the blocks, the
  letters): a 1 MB completion scores in a few tens of milliseconds at most.
* **Picklable** reward objects (TRL and multiprocessing data loaders may pickle them), when their judge and
  tokenizer are.

Accuracy (MedVLM-R1's paper, section 3, not its public code)
--------------------------------------------------------------
MedVLM-R1 evaluates correctness "after verifying the correct format": by default
(:data:`ACCURACY_REQUIRES_FORMAT` is ``True``) a completion that is not well-formed
(:func:`~medrl_lib.rl.completions.well_formed`, format reward 0) scores 0 accuracy whatever its answer block holds.
``require_format=False`` (keyword of :func:`accuracy_reward`, or :class:`AccuracyReward`) is MedVLM-R1's released
code instead: the answer block is scored whenever it is unique (exactly one ``<answer>`` followed by exactly one
``</answer>``), well-formed completion or not. Then the content of the ``<answer>`` block is scored. Letters are
capital ASCII letters; the item's letters are ``A`` up to its number of options. With the content stripped of
whitespace:

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

An empty ``<answer></answer>`` earns the format reward but 0 accuracy, so an empty answer can never collect the full
reward. Where MedVLM-R1's public code (``open_r1/grpo.py`` of JZPeterPan/MedVLM-R1) differs: it takes the first
``<answer>...</answer>`` match (case-insensitive, repeated blocks allowed), upper-cases the whole answer and counts
*every* character A-J in it, inside words included, giving 0 unless exactly one occurs. Its nominal 0.5 tier
(correct letter plus leftover text) is therefore reachable only when the leftover text has no letter a-j: ``"B."``
and ``"(B)"`` get 0.5 there (1.0 here), while ``"B) Pulmonary nodule"`` gets 0 there (0.5 here); option text
instead of a letter gets 0 there. The 0.5 tiers are a training matter: in evaluation an item is right or wrong
(:func:`medrl_lib.rl.completions.answer_letter`, :func:`medrl_lib.training.evaluate.score_completion`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Final

from medrl_lib.common.checks import check_lengths, positive_int, strict_bool
from medrl_lib.rl.completions import Completion, completion_text, option_letters, parse_completion, standalone_letter, well_formed
from medrl_lib.rl.judges import Judge

__all__ = [
    "ACCURACY_REQUIRES_FORMAT",
    "REWARD_NAMES",
    "AccuracyReward",
    "CorrectnessWeightedLengthReward",
    "ExtendedChainReward",
    "SemanticAlignmentReward",
    "accuracy_reward",
    "answer_score",
    "format_reward",
]

ACCURACY_REQUIRES_FORMAT: Final[bool] = True
"""Default of ``accuracy_reward(require_format=...)``: accuracy is paid only to well-formed completions
(MedVLM-R1's text: correctness is evaluated "after verifying the correct format"); ``False`` is its released
code (a unique answer block suffices)."""

# A lone letter, as in "B", "(B)", "B.", "B)" (matched against the whole stripped answer).
_BARE_LETTER: Final = re.compile(r"\(?([A-Z])\)?\.?")
# A leading capital letter, optionally after "(", that is not part of a word ("B) ..." but not "Bone").
_LEADING_LETTER: Final = re.compile(r"\(?([A-Z])(?!\w)")
_ALNUM: Final = re.compile(r"[^\W_]")
_NON_ALNUM_RUN: Final = re.compile(r"[\W_]+")
# An answer longer than this many times (the longest option + 1) is not taken for an option's
# text; the bound spares normalising megabytes of degenerate output (see the module docstring).
_OPTION_TEXT_SLACK: Final = 4


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 for each well-formed completion (:func:`~medrl_lib.rl.completions.well_formed`), else 0.0.

    >>> format_reward([
    ...     "<think>\\nThe lesion is hyperintense.\\n</think>\\n<answer>B</answer>",  # multi-line
    ...     "  <think></think><answer></answer>\\n",  # empty blocks, surrounding whitespace
    ...     "<think>a</think><think>b</think><answer>B</answer>",  # repeated tag
    ...     "Sure! <think>a</think><answer>B</answer>",  # text outside the blocks
    ...     [{"role": "assistant", "content": "<think>a</think><answer>B</answer>"}],
    ... ])
    [1.0, 1.0, 0.0, 0.0, 1.0]
    """
    return [1.0 if well_formed(c) else 0.0 for c in completions]


def _normalise_text(text: str) -> str:
    """Casefold, replace non-alphanumerics by spaces, collapse whitespace."""
    return _NON_ALNUM_RUN.sub(" ", text.casefold()).strip()


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
    letters = option_letters(len(options))
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
        if _ALNUM.search(rest) and not (others and standalone_letter(others).search(rest)):
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
    per row, both aligned with ``completions``. With ``require_format=True`` (the default,
    :data:`ACCURACY_REQUIRES_FORMAT`: MedVLM-R1's text) a completion that is not well-formed
    (:func:`~medrl_lib.rl.completions.well_formed`) scores 0; with ``require_format=False`` (MedVLM-R1's released code) a unique
    answer block suffices. :class:`AccuracyReward` is the same reward with the setting bound, for TRL.
    Raises ``ValueError`` on length mismatch or a gold letter outside a row's options.

    >>> options = [["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal"]] * 6
    >>> accuracy_reward([
    ...     "<think>Round opacity.</think><answer>B</answer>",  # exact letter
    ...     "<think>Round opacity.</think><answer>B) Pulmonary nodule</answer>",  # letter + text
    ...     "<think>Round opacity.</think><answer>Pulmonary nodule</answer>",  # option text
    ...     "<think>Round opacity.</think><answer>A or B</answer>",  # several letters
    ...     "Round opacity. <answer>B</answer>",  # format broken: 0 by default
    ...     "<think>Round opacity.</think><answer></answer>",  # empty answer
    ... ], answer=["B"] * 6, options=options)
    [1.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    >>> accuracy_reward(["Round opacity. <answer>B</answer>"], ["B"], options[:1], require_format=False)
    [1.0]
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


class AccuracyReward:
    """:func:`accuracy_reward` with ``require_format`` bound: a picklable TRL reward whose ``__name__`` is
    ``"accuracy_reward"`` (TRL logs ``rewards/accuracy_reward/mean``), so that training can choose the setting.

    ``AccuracyReward()`` follows MedVLM-R1's text (format first); ``AccuracyReward(require_format=False)`` its
    released code. TRL reward ``reward(completions, answer, options, **kwargs)``.

    >>> broken = "Round opacity. <answer>B</answer>"
    >>> [AccuracyReward(require_format=r)([broken], answer=["B"], options=[["Cyst", "Nodule"]]) for r in (True, False)]
    [[0.0], [1.0]]
    >>> import pickle; reward = pickle.loads(pickle.dumps(AccuracyReward(require_format=False)))
    >>> reward.__name__, reward.require_format, reward
    ('accuracy_reward', False, AccuracyReward(require_format=False))
    """

    __name__ = "accuracy_reward"

    def __init__(self, *, require_format: bool = ACCURACY_REQUIRES_FORMAT) -> None:
        self.require_format = strict_bool("require_format", require_format)

    def __repr__(self) -> str:
        return f"AccuracyReward(require_format={self.require_format})"

    def __call__(
        self,
        completions: Sequence[Completion],
        answer: Sequence[str],
        options: Sequence[Sequence[str]],
        **kwargs: Any,
    ) -> list[float]:
        kwargs.pop("require_format", None)  # the bound setting wins
        return accuracy_reward(completions, answer, options, require_format=self.require_format, **kwargs)


def _think(completion: object) -> str | None:
    """The stripped content of the unique ``<think>`` block, or ``None`` if there is none."""
    think = parse_completion(completion_text(completion)).think
    return None if think is None else think.strip()


class SemanticAlignmentReward:
    """Semantic alignment reward (Zhu et al. section 3.2): 1.0 if the judge says the reasoning is
    clinically grounded for the question (Yes), else 0.0.

    TRL reward: ``reward(completions, question, facts=None, **kwargs)``, with the dataset's
    ``question`` column and, if present, its ``facts`` column (``"{}"`` per item when absent; the
    :class:`~medrl_lib.rl.oracle.OracleJudge` needs it, an :class:`~medrl_lib.rl.judges.LLMJudge` ignores it). The
    reasoning is the stripped content of the unique ``<think>`` block
    (:func:`~medrl_lib.rl.completions.parse_completion`; the completion need not be well-formed otherwise). A completion without a unique think block, or with an empty one, scores
    0.0 without asking the judge; the judge is asked once, with one batch holding all the other
    items, in order. Logged by TRL as ``rewards/semantic_reward/mean``. Picklable when its judge is.

    >>> from medrl_lib.rl.oracle import OracleJudge
    >>> facts = '{"modality": "MRI", "n_lesions": 1, "lesions": [{"quadrant": "lower left"}]}'
    >>> reward = SemanticAlignmentReward(OracleJudge())
    >>> reward([
    ...     "<think>Bright lesion in the lower left.</think><answer>A</answer>",  # grounded
    ...     "<think>Bright lesion in the upper right.</think><answer>B</answer>",  # wrong quadrant
    ...     "<think>  </think><answer>A</answer>",  # empty reasoning: 0 without asking the judge
    ...     "<answer>A</answer>",  # no reasoning
    ... ], question=["Where is the lesion located in this MRI image?"] * 4, facts=[facts] * 4)
    [1.0, 0.0, 0.0, 0.0]
    >>> reward.__name__
    'semantic_reward'
    """

    __name__ = "semantic_reward"

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.__name__ = "semantic_reward"

    def __call__(
        self,
        completions: Sequence[Completion],
        question: Sequence[str],
        facts: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        if facts is None:
            facts = ["{}"] * len(completions)
        n = check_lengths(completions=completions, question=question, facts=facts)
        thinks = [_think(c) for c in completions]
        asked = [i for i, think in enumerate(thinks) if think]
        rewards = [0.0] * n
        if asked:
            verdicts = list(
                self.judge([question[i] for i in asked], [thinks[i] for i in asked], [facts[i] for i in asked])  # type: ignore[misc]
            )
            if len(verdicts) != len(asked):
                raise ValueError(f"the judge returned {len(verdicts)} verdicts for {len(asked)} items")
            for i, verdict in zip(asked, verdicts):
                rewards[i] = 1.0 if verdict else 0.0
        return rewards


class _LengthReward:
    """The length term shared by :class:`ExtendedChainReward` and :class:`CorrectnessWeightedLengthReward`."""

    def __init__(self, tokenizer: Any = None, *, target_tokens: int = 200, weight: float = 1.0) -> None:
        positive_int("target_tokens", target_tokens)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
        if tokenizer is not None and not callable(tokenizer):
            raise ValueError(f"tokenizer must be callable or None, got {type(tokenizer).__name__}")
        self.tokenizer = tokenizer
        self.target_tokens = target_tokens
        self.weight = float(weight)

    def n_tokens(self, think: str) -> int:
        """Length of a (stripped) reasoning: tokens under the tokenizer, else whitespace-separated words."""
        if self.tokenizer is None:
            return len(think.split())
        return len(self.tokenizer(think, add_special_tokens=False)["input_ids"])

    def length_term(self, completion: object) -> float:
        """``weight * min(n / target_tokens, 1)``; 0.0 without a unique think block."""
        think = _think(completion)
        if think is None:
            return 0.0
        return self.weight * min(self.n_tokens(think) / self.target_tokens, 1.0)


class ExtendedChainReward(_LengthReward):
    """Extended Chain Reward, ECR (Zhu et al. section 3.3): reward growing with reasoning length.

    The paper gives no formula; ours is ``r = weight * min(n / target_tokens, 1)``, in
    ``[0, weight]``, where ``n`` is the length of the stripped content of the unique ``<think>``
    block: its number of tokens under ``tokenizer`` (anything callable as
    ``tokenizer(text, add_special_tokens=False)["input_ids"]``, e.g. the policy's tokenizer), or,
    if ``tokenizer`` is None, its number of whitespace-separated words. No unique think block
    gives 0. ``target_tokens`` must be a positive integer, ``weight`` a finite number >= 0.
    TRL reward ``reward(completions, **kwargs)``, logged as ``rewards/ecr_reward/mean``; picklable
    (with a picklable tokenizer, which Hugging Face tokenizers are).

    >>> ecr = ExtendedChainReward(target_tokens=4, weight=0.5)
    >>> ecr(["<think>one two</think><answer>A</answer>", "<think>a b c d e f</think>", "no reasoning"])
    [0.25, 0.5, 0.0]
    >>> ecr.__name__
    'ecr_reward'
    """

    __name__ = "ecr_reward"

    def __init__(self, tokenizer: Any = None, *, target_tokens: int = 200, weight: float = 1.0) -> None:
        super().__init__(tokenizer, target_tokens=target_tokens, weight=weight)
        self.__name__ = "ecr_reward"

    def __call__(self, completions: Sequence[Completion], **kwargs: Any) -> list[float]:
        return [self.length_term(c) for c in completions]


class CorrectnessWeightedLengthReward(_LengthReward):
    """Correctness-Weighted Length Reward, CWR (Zhu et al. section 3.3): the ECR length term,
    paid only when the answer is correct.

    ``r = weight * min(n / target_tokens, 1)`` (``n`` as in :class:`ExtendedChainReward`) if the
    unique ``<answer>`` block is strictly correct, i.e. ``accuracy_reward([completion], ...,
    require_format=require_format) == [1.0]`` (exactly the gold letter; with ``require_format=True``, the
    default :data:`ACCURACY_REQUIRES_FORMAT`, only in a well-formed completion, as the accuracy reward pays
    it: give both rewards the same setting); else 0. The half-credit
    answers (letter plus explanation, option text) get no length reward: paying length for them
    would reward long reasoning that ends in a sloppy answer. TRL reward
    ``reward(completions, answer, options, **kwargs)`` with the dataset's ``answer`` and
    ``options`` columns; logged as ``rewards/cwr_reward/mean``; picklable. A gold letter outside a
    row's options or mismatched lengths raise ``ValueError`` (caller errors).

    >>> cwr = CorrectnessWeightedLengthReward(target_tokens=4)
    >>> cwr([
    ...     "<think>one two</think><answer>B</answer>",  # correct: half the target length
    ...     "<think>one two</think><answer>C</answer>",  # wrong letter
    ...     "<think>one two</think><answer>B) nodule</answer>",  # 0.5 accuracy: not strictly correct
    ...     "<think>one two</think> so <answer>B</answer>",  # not well-formed
    ... ], answer=["B"] * 4, options=[["cyst", "nodule", "normal"]] * 4)
    [0.5, 0.0, 0.0, 0.0]
    >>> cwr.__name__
    'cwr_reward'
    """

    __name__ = "cwr_reward"

    def __init__(self, tokenizer: Any = None, *, target_tokens: int = 200, weight: float = 1.0,
                 require_format: bool = ACCURACY_REQUIRES_FORMAT) -> None:
        super().__init__(tokenizer, target_tokens=target_tokens, weight=weight)
        self.require_format = strict_bool("require_format", require_format)
        self.__name__ = "cwr_reward"

    def __call__(
        self,
        completions: Sequence[Completion],
        answer: Sequence[str],
        options: Sequence[Sequence[str]],
        **kwargs: Any,
    ) -> list[float]:
        check_lengths(completions=completions, answer=answer, options=options)
        scores = accuracy_reward(completions, answer, options, require_format=self.require_format)
        return [self.length_term(c) if s == 1.0 else 0.0 for c, s in zip(completions, scores)]  # strictly correct


REWARD_NAMES: Final = ("format_reward", "accuracy_reward", "semantic_reward", "ecr_reward", "cwr_reward")
"""Reward names usable in ``grpo.reward_weights``."""
