"""Unrelated text for the tiny base model's pretraining: general language, no medical image, no image question.

A real base VLM has read a great deal of text besides image captions, including documents laid out with tags and
answer letters (web pages, exams, instruction data); the tiny base stand-in reads a small synthetic analogue:
multiple-choice questions about numbers and letters, each with a blank image (the tiny model is a VLM and every
training row carries an image). A document is either

* **prose**: no prompt, the statement of the fact ("12 is larger than 7."), or
* **tagged** (a seeded share, ``tagged_fraction``): the question with the reasoning instruction of
  :data:`medrl_lib.rl.prompts.PROMPT_TEMPLATES` as prompt, answered ``<think>fact</think><answer>letter</answer>``.

So the base model knows the tags and the letter layout from unrelated text, but was never asked about an image.
Whether GRPO from the base can then learn the format is what E1 measures (calibration check C4).

>>> docs = general_documents(4, seed=0, tagged_fraction=0.5)
>>> [d["completion"][0]["content"][:7] for d in docs][:2], len(docs), docs[0]["id"]
(['<think>', '<think>'], 4, 'text-0-000000')
>>> sorted({bool(d["prompt"][0]["content"]) for d in docs})
[False, True]
"""

from __future__ import annotations

import io

import numpy as np

from medrl_lib.rl.prompts import conversation

#: The question families: name -> (question, function(rng) -> (options, gold index, fact sentence)).
_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty").split()


def _larger(rng: np.random.Generator):
    k = int(rng.integers(2, 5))
    values = [int(v) for v in rng.choice(np.arange(1, 100), size=k, replace=False)]
    gold = int(np.argmax(values))
    return "Which number is the largest?", [str(v) for v in values], gold, \
        f"{values[gold]} is larger than {', '.join(str(v) for i, v in enumerate(values) if i != gold)}."


def _sum(rng: np.random.Generator):
    a, b = (int(x) for x in rng.integers(1, 10, size=2))
    wrong = [int(x) for x in rng.choice([s for s in range(2, 19) if s != a + b], size=int(rng.integers(1, 4)),
                                        replace=False)]
    values = [a + b, *wrong]
    order = rng.permutation(len(values))
    values = [values[i] for i in order]
    return f"What is {a} plus {b}?", [str(v) for v in values], values.index(a + b), f"{a} plus {b} is {a + b}."


def _word(rng: np.random.Generator):
    n = int(rng.integers(0, len(_WORDS)))
    others = [int(x) for x in rng.choice([i for i in range(len(_WORDS)) if i != n], size=int(rng.integers(1, 4)),
                                         replace=False)]
    values = [n, *others]
    order = rng.permutation(len(values))
    values = [values[i] for i in order]
    return f"Which word names the number {n}?", [_WORDS[v] for v in values], values.index(n), \
        f"The number {n} is written {_WORDS[n]}."


FAMILIES = {"larger": _larger, "sum": _sum, "word": _word}


def _blank_png(size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (size, size)).save(buf, format="PNG")
    return buf.getvalue()


def general_documents(n: int, seed: int = 0, tagged_fraction: float = 0.0, image_size: int = 56) -> list[dict]:
    """``n`` documents as TRL conversational rows (``id``, ``prompt``, ``completion``, ``image``), families in turn,
    a seeded ``tagged_fraction`` of them in the tagged question/answer layout, the rest as prose."""
    if n < 0 or not 0.0 <= tagged_fraction <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= tagged_fraction <= 1, got n={n}, tagged_fraction={tagged_fraction}")
    rng = np.random.default_rng([seed, 7331])
    image = {"bytes": _blank_png(image_size), "path": None}
    families = list(FAMILIES.values())
    tagged = rng.random(n) < tagged_fraction
    rows = []
    for i in range(n):
        question, options, gold, fact = families[i % len(families)](rng)
        if tagged[i]:
            prompt = conversation(question, options, "reasoning")
            text = f"<think>{fact}</think><answer>{chr(65 + gold)}</answer>"
        else:
            prompt, text = [{"role": "user", "content": ""}], fact
        rows.append({"id": f"text-{seed}-{i:06d}", "prompt": prompt,
                     "completion": [{"role": "assistant", "content": text}], "image": image})
    return rows
