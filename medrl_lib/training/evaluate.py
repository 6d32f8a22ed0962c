"""Evaluation: batched generation over a test set and per-item records.

Scoring follows MedVLM-R1's evaluation (its section 4 and its public ``src/eval/test_qwen2vl_med.py``), in
:func:`score_completion`:

* **reasoning prompt**: the letter is the first match of ``<answer>\\s*([A-Z])\\s*</answer>`` in the completion
  (:func:`medrl_lib.rl.completions.answer_letter`); the item is correct when that letter is the gold letter (a letter
  that is not one of the item's options is therefore wrong) and, with ``require_format=True`` (the default), the
  completion is well-formed (:func:`medrl_lib.rl.completions.well_formed`): the paper scores "only the correct choice
  enclosed in the <answer>...</answer> tag ...; any deviation from this format, even if semantically correct,
  results in a zero score". ``require_format=False`` is MedVLM-R1's released script, which searches the regex
  in any output. The 0.5 partial credit of the accuracy reward is a training matter only.
* **plain prompt**: the whole output, stripped of surrounding whitespace, must equal the gold letter (the
  script compares the raw output with the letter; we strip the whitespace that decoding may leave).

``letter_rule="lenient"`` keeps our earlier, more forgiving rules, documented as an alternative: with the
reasoning prompt the unique answer block must hold the gold letter, optionally as ``(B)``, ``B.`` or ``B)``
(:func:`medrl_lib.rl.rewards.accuracy_reward` equal to 1.0, under the same ``require_format``); with the plain
prompt the letter is read by :func:`medrl_lib.rl.completions.extract_choice` ("The answer is B" counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from tqdm import tqdm

from medrl_lib.models.loading import eos_token_ids, vision_token_ids
from medrl_lib.rl.completions import answer_letter, extract_choice, parse_completion, well_formed
from medrl_lib.rl.prompts import chat_messages
from medrl_lib.rl.rewards import ACCURACY_REQUIRES_FORMAT, accuracy_reward

LetterRule = Literal["strict", "lenient"]
#: The scoring rules of :func:`score_completion`: ``"strict"`` (MedVLM-R1's evaluation, the default) and
#: ``"lenient"`` (our earlier letter extraction).
LETTER_RULES: tuple[str, ...] = ("strict", "lenient")


@dataclass
class Record:
    """What an evaluation keeps about one test item."""

    id: str
    """item id"""
    modality: str
    """item modality"""
    prompt: str
    """the full prompt text given to the model"""
    completion: str
    """the model's answer text"""
    extracted: str | None
    """the letter read from the answer under the scoring rule (None when none could be read)"""
    answer: str
    """the gold letter"""
    correct: bool
    """scored correct under the prompt mode's rule (:func:`score_completion`)"""
    reasoning: str | None
    """the text of the <think> block, if any"""
    reasoning_tokens: int
    """tokens of the reasoning under the policy's tokenizer"""
    n_options: int
    """number of options of the item"""
    well_formed: bool
    """the completion is well-formed: the format reward's rule (:func:`medrl_lib.rl.completions.well_formed`), not merely
    a unique <think> block"""


def score_completion(completion: str, answer: str, options: list[str], mode: str = "reasoning", *,
                     require_format: bool = ACCURACY_REQUIRES_FORMAT,
                     letter_rule: LetterRule = "strict") -> tuple[bool, str | None]:
    """``(correct, extracted letter)`` of one completion (rules in the module docstring).

    >>> opts = ["cyst", "nodule", "normal"]
    >>> [score_completion(c, "B", opts)[0] for c in [
    ...     "<think>round</think><answer> B </answer>",  # the regex letter is the gold letter
    ...     "<think>round</think><answer>(B)</answer>",  # not the regex: wrong
    ...     "<think>round</think><answer>B) nodule</answer>",  # 0.5 as a reward, wrong in evaluation
    ...     "round <answer>B</answer>",  # not well-formed
    ... ]]
    [True, False, False, False]
    >>> score_completion("round <answer>B</answer>", "B", opts, require_format=False)
    (True, 'B')
    >>> score_completion("<think>x</think><answer>Z</answer>", "B", opts)  # a letter beyond the options
    (False, 'Z')
    >>> [score_completion(c, "B", opts, "plain") for c in [" B\\n", "B.", "The answer is B"]]
    [(True, 'B'), (False, None), (False, None)]
    >>> score_completion("The answer is B", "B", opts, "plain", letter_rule="lenient")
    (True, 'B')
    """
    if letter_rule not in LETTER_RULES:
        raise ValueError(f"letter_rule must be one of {LETTER_RULES}, got {letter_rule!r}")
    gold = answer.strip().upper()
    if mode == "reasoning":
        if letter_rule == "lenient":
            correct = accuracy_reward([completion], [answer], [options], require_format=require_format)[0] == 1.0
            parsed = parse_completion(completion)
            extracted = extract_choice(parsed.answer, len(options)) if parsed.answer is not None else None
            return correct, extracted
        extracted = answer_letter(completion)
        correct = extracted is not None and extracted == gold and (well_formed(completion) or not require_format)
        return correct, extracted
    if mode != "plain":
        raise ValueError(f"unknown prompt mode {mode!r}; expected 'reasoning' or 'plain'")
    if letter_rule == "lenient":
        extracted = extract_choice(completion, len(options))
        return extracted == gold, extracted
    stripped = completion.strip()
    extracted = stripped if len(stripped) == 1 and "A" <= stripped <= "Z" else None
    return stripped == gold, extracted


def prompt_texts(processor, questions: list[str], options: list[list[str]], mode: str = "reasoning") -> list[str]:
    """The chat-template text of each item's prompt (``<|vision_start|><|image_pad|><|vision_end|>`` where the image
    goes, the generation prompt at the end): what :func:`generate_records` and the vLLM engine
    (:func:`medrl_lib.training.generation.vllm_records`) give the model."""
    return [processor.apply_chat_template(chat_messages(q, o, mode), add_generation_prompt=True, tokenize=False)
            for q, o in zip(questions, options)]


def make_record(tokenizer, row: dict, prompt: str, completion: str, *, mode: str = "reasoning",
                require_format: bool = ACCURACY_REQUIRES_FORMAT, letter_rule: LetterRule = "strict") -> Record:
    """The :class:`Record` of one decoded completion of the item ``row`` (its ``id``, ``modality``, ``options`` and
    ``answer``), scored by :func:`score_completion`; every engine's completions go through here."""
    options, answer = row["options"], row["answer"]
    correct, extracted = score_completion(completion, answer, options, mode, require_format=require_format,
                                          letter_rule=letter_rule)
    parsed = parse_completion(completion)
    reasoning = parsed.think
    n_tok = len(tokenizer(reasoning, add_special_tokens=False)["input_ids"]) if reasoning else 0
    return Record(id=row["id"], modality=row["modality"], prompt=prompt, completion=completion, extracted=extracted,
                  answer=answer, correct=correct, reasoning=reasoning, reasoning_tokens=n_tok,
                  n_options=len(options), well_formed=parsed.well_formed)


@torch.no_grad()
def generate_records(model, processor, ds, *, batch_size: int = 32, max_new_tokens: int = 128,
                     mode: str = "reasoning", greedy: bool = True, temperature: float = 1.0,
                     require_format: bool = ACCURACY_REQUIRES_FORMAT, letter_rule: LetterRule = "strict",
                     desc: str = "eval") -> list[Record]:
    """Answer every item of ``ds`` (common schema) in batches with left padding and the KV cache; score each
    completion with :func:`score_completion` (``mode``, ``require_format``, ``letter_rule``).

    Generation stops on every end-of-sequence id of the model's generation config (Qwen2-VL-Instruct lists
    ``<|im_end|>`` and ``<|endoftext|>``) and on the tokenizer's EOS (:func:`medrl_lib.models.loading.eos_token_ids`),
    as TRL's GRPO trainer does; passing the tokenizer's id alone would override the model's list."""
    model.eval()
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    records: list[Record] = []
    cols = ds.select_columns(["id", "modality", "question", "options", "answer"])
    for start in tqdm(range(0, len(ds), batch_size), desc=desc, leave=False, disable=None):
        rows = cols[start:start + batch_size]
        images = ds[start:start + batch_size]["image"]
        texts = prompt_texts(processor, rows["question"], rows["options"], mode)
        enc = processor(text=texts, images=images, padding=True, return_tensors="pt").to(device)
        gen_kwargs = {"max_new_tokens": max_new_tokens, "do_sample": not greedy, "use_cache": True,
                      "pad_token_id": tokenizer.pad_token_id, "eos_token_id": eos_token_ids(model, tokenizer),
                      "suppress_tokens": vision_token_ids(model) or None,
                      "repetition_penalty": 1.0}  # not whatever a checkpoint's generation_config carries
        if not greedy:
            gen_kwargs.update(temperature=temperature, top_p=1.0, top_k=0)  # not the hub config's near-greedy top_p/top_k
        out = model.generate(**enc, **gen_kwargs)                                        # (B, P + T)
        new = out[:, enc["input_ids"].shape[1]:]                                          # (B, T)
        completions = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i, completion in enumerate(completions):
            row = {k: rows[k][i] for k in ("id", "modality", "options", "answer")}
            records.append(make_record(tokenizer, row, texts[i], completion, mode=mode,
                                       require_format=require_format, letter_rule=letter_rule))
    return records


def random_guess_accuracy(ds) -> dict[str, float]:
    """Expected accuracy (in %) of guessing uniformly among each item's options, per modality and overall."""
    out: dict[str, list[float]] = {}
    for mod, opts in zip(ds["modality"], ds["options"]):
        out.setdefault(mod, []).append(1.0 / len(opts))
    res = {m: 100.0 * sum(v) / len(v) for m, v in sorted(out.items())}
    allv = [x for v in out.values() for x in v]
    res["all"] = 100.0 * sum(allv) / max(1, len(allv))
    return res
