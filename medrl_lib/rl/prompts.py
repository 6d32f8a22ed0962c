"""Prompts: MedVLM-R1's reasoning prompt (its Fig. 1) and the plain single-letter prompt for baselines (the
answer a synthetic item is tuned towards is :func:`medrl_lib.data.synthetic.reasoning_target`).

The options follow the question as MedVLM-R1 builds its ``problem`` field (``create_problem_solution`` in
``open_r1/grpo.py`` of its public code, and its released evaluation file): the question, a newline, then one
``A) text`` line per option (:data:`OPTION_FORMAT`), identically in training and evaluation (evaluating with
another prompt than training makes numbers incomparable). The prompt templates are MedVLM-R1's Fig. 1 wording
with ``{question}`` standing for that whole block.

>>> print(format_question("Which side?", ["left", "right"]))
Which side?
A) left
B) right
>>> conversation("Q?", ["x", "y"], mode="plain")[0]["content"].endswith("(A, B, C, D, ...)")
True
"""

from __future__ import annotations

from typing import Literal

#: How each option is shown after the question, one per line: MedVLM-R1's ``f"{letter}) {option}"``.
OPTION_FORMAT = "{letter}) {text}"

PROMPT_TEMPLATES: dict[str, str] = {
    # MedVLM-R1 Fig. 1, as used in its public evaluation.
    "reasoning": (
        "{question} Your task: 1. Think through the question step by step, enclose your reasoning process in "
        "<think>...</think> tags. 2. Then provide the correct single-letter choice (A, B, C, D,...) inside "
        "<answer>...</answer> tags. 3. No extra information or text outside of these tags."
    ),
    # The baselines' plain prompt (MedVLM-R1 section 4).
    "plain": "{question} Your task: provide the correct single-letter choice (A, B, C, D, ...)",
}

PromptMode = Literal["reasoning", "plain"]


def format_question(question: str, options: list[str]) -> str:
    """The question followed by its lettered options, one per line (MedVLM-R1's ``problem``: ``"Q\\nA) x\\nB) y"``)."""
    lines = [OPTION_FORMAT.format(letter=chr(65 + i), text=t) for i, t in enumerate(options)]
    return "\n".join([question, *lines])


def prompt_text(question: str, options: list[str], mode: PromptMode = "reasoning") -> str:
    """The user message text for one item in the given prompt mode."""
    if mode not in PROMPT_TEMPLATES:
        raise ValueError(f"unknown prompt mode {mode!r}; expected one of {sorted(PROMPT_TEMPLATES)}")
    return PROMPT_TEMPLATES[mode].format(question=format_question(question, options))


def conversation(question: str, options: list[str], mode: PromptMode = "reasoning") -> list[dict]:
    """TRL's conversational prompt (one user turn, text only; TRL inserts the image placeholder)."""
    return [{"role": "user", "content": prompt_text(question, options, mode)}]


def chat_messages(question: str, options: list[str], mode: PromptMode = "reasoning") -> list[dict]:
    """The same user turn with an explicit image part first, for ``processor.apply_chat_template``."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt_text(question, options, mode)}]}]
