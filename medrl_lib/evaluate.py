"""Evaluation: batched generation over a test set and per-item records.

Scoring follows MedVLM-R1 (STUDY.md 7): with the reasoning prompt an item counts as correct only when the
``<answer>`` block holds exactly the gold letter (:func:`medrl_lib.rewards.accuracy_reward` equal to 1.0); with
the plain prompt the letter is read by :func:`medrl_lib.rewards.extract_choice`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from .models import eos_token_ids
from .prompts import chat_messages
from .rewards import accuracy_reward, extract_choice, parse_completion


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
    """the letter read from the answer (None when none could be read)"""
    answer: str
    """the gold letter"""
    correct: bool
    """scored correct under the prompt mode's rule"""
    reasoning: str | None
    """the text of the <think> block, if any"""
    reasoning_tokens: int
    """tokens of the reasoning under the policy's tokenizer"""
    n_options: int
    """number of options of the item"""


def _score(completion: str, answer: str, options: list[str], mode: str) -> tuple[bool, str | None]:
    if mode == "reasoning":
        correct = accuracy_reward([completion], [answer], [options])[0] == 1.0
        parsed = parse_completion(completion)
        extracted = extract_choice(parsed.answer, len(options)) if parsed.answer is not None else None
        return correct, extracted
    extracted = extract_choice(completion, len(options))
    return extracted == answer, extracted


@torch.no_grad()
def generate_records(model, processor, ds, *, batch_size: int = 32, max_new_tokens: int = 128,
                     mode: str = "reasoning", greedy: bool = True, temperature: float = 1.0,
                     desc: str = "eval") -> list[Record]:
    """Answer every item of ``ds`` (common schema) in batches with left padding and the KV cache.

    Generation stops on every end-of-sequence id of the model's generation config (Qwen2-VL-Instruct lists
    ``<|im_end|>`` and ``<|endoftext|>``) and on the tokenizer's EOS (:func:`medrl_lib.models.eos_token_ids`),
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
        texts = [processor.apply_chat_template(chat_messages(q, o, mode), add_generation_prompt=True, tokenize=False)
                 for q, o in zip(rows["question"], rows["options"])]
        enc = processor(text=texts, images=images, padding=True, return_tensors="pt").to(device)
        gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=not greedy, use_cache=True,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=eos_token_ids(model, tokenizer))
        if not greedy:
            gen_kwargs.update(temperature=temperature, top_p=1.0, top_k=0)  # not the hub config's near-greedy top_p/top_k
        out = model.generate(**enc, **gen_kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        completions = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i, completion in enumerate(completions):
            options, answer = rows["options"][i], rows["answer"][i]
            correct, extracted = _score(completion, answer, options, mode)
            reasoning = parse_completion(completion).think
            n_tok = len(tokenizer(reasoning, add_special_tokens=False)["input_ids"]) if reasoning else 0
            records.append(Record(id=rows["id"][i], modality=rows["modality"][i], prompt=texts[i],
                                  completion=completion, extracted=extracted, answer=answer, correct=correct,
                                  reasoning=reasoning, reasoning_tokens=n_tok, n_options=len(options)))
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
