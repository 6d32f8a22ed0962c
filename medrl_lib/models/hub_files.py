"""Hub-style tokenizer and checkpoint files for the stand-ins of :mod:`medrl_lib.models.hub_standins`.

A deterministic byte-pair-encoding trainer (:func:`train_bpe`; the ``tokenizers`` trainer breaks ties in hash order)
with GPT-2's byte-level alphabet, and writers of the files the hub repositories ship: GPT-2-layout ``vocab.json`` and
``merges.txt``, added-token entries, sharded safetensors with their index.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def byte_alphabet() -> list[str]:
    """GPT-2's 256 byte-level symbols in its vocabulary order (printable bytes first)."""
    return [chr(c) for c in gpt2_codepoints()]


def gpt2_codepoints() -> list[int]:
    """GPT-2's byte-to-symbol code points: printable bytes map to themselves, the others to 256 and up."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return cs


def train_bpe(texts: list[str], vocab_size: int, *, pre_tokenizer, normalize: str | None = None,
               end_of_word_suffix: str | None = None, alphabet: list[str] | None = None
               ) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn a BPE (no special tokens) on ``texts`` split by the ``tokenizers`` ``pre_tokenizer`` and return its
    ``(vocab, merges)``: the alphabet (``alphabet`` in its order, then any other symbol seen, sorted), then each
    merge's token. ``end_of_word_suffix`` is appended to a word's last symbol (BioGPT's ``</w>``).

    Deterministic, unlike the ``tokenizers`` trainer (whose ties follow hash order): the most frequent pair is
    merged first, ties going to the smallest pair."""
    import heapq
    import unicodedata
    from collections import Counter, defaultdict

    counts: Counter[str] = Counter()
    for text in texts:
        text = unicodedata.normalize(normalize, text) if normalize else text
        counts.update(piece for piece, _ in pre_tokenizer.pre_tokenize_str(text))
    words, freq = [], []
    for word, c in sorted(counts.items()):
        symbols = list(word)
        if end_of_word_suffix:
            symbols[-1] += end_of_word_suffix
        words.append(symbols)
        freq.append(c)
    symbols = list(alphabet or [])
    symbols += sorted({x for w in words for x in w} - set(symbols))
    vocab = {t: i for i, t in enumerate(symbols)}
    pairs: Counter[tuple[str, str]] = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pairs[pair] += freq[i]
            where[pair].add(i)
    heap = [(-c, pair) for pair, c in pairs.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -neg or -neg <= 0:
            continue  # a stale entry
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        changed = set()
        for i in sorted(where.pop(best, ())):
            w, c = words[i], freq[i]
            for pair in zip(w, w[1:]):
                pairs[pair] -= c
                changed.add(pair)
            merged, j = [], 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == best:
                    merged.append(w[j] + w[j + 1])
                    j += 2
                else:
                    merged.append(w[j])
                    j += 1
            words[i] = merged
            for pair in zip(merged, merged[1:]):
                pairs[pair] += c
                where[pair].add(i)
                changed.add(pair)
        pairs.pop(best, None)
        for pair in changed:
            if pairs.get(pair, 0) > 0:
                heapq.heappush(heap, (-pairs[pair], pair))
    return vocab, merges


def write_json(path: Path, obj) -> None:
    """``obj`` as indented UTF-8 JSON, as the hub repositories ship their configuration files."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_vocab_merges(folder: Path, vocab: dict[str, int], merges: list[tuple], header: str | None) -> None:
    """``vocab.json`` and ``merges.txt`` in the GPT-2 layout (``header``: its ``#version`` line)."""
    write_json(folder / "vocab.json", vocab)
    lines = ([header] if header else []) + [" ".join(m) for m in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def added_token(content: str) -> dict:
    """The ``added_tokens_decoder`` entry of a special token in a hub ``tokenizer_config.json``."""
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


def save_sharded(state: dict[str, torch.Tensor], folder: Path, n_shards: int, dtype: torch.dtype) -> None:
    """Save ``state`` as ``model-0000i-of-0000n.safetensors`` shards with ``model.safetensors.index.json``."""
    from safetensors.torch import save_file

    keys = sorted(state)
    names = [f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors" for i in range(n_shards)]
    per = -(-len(keys) // n_shards)
    weight_map, total = {}, 0
    for i, name in enumerate(names):
        part = {k: state[k].detach().to(dtype).contiguous().clone() for k in keys[i * per:(i + 1) * per]}
        save_file(part, str(folder / name), metadata={"format": "pt"})
        for k, v in part.items():
            weight_map[k] = name
            total += v.numel() * v.element_size()
    write_json(folder / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
