"""Tests for medrl_lib.scoring.metrics (Zhu et al. Appendix B metrics) and the reference LM it scores perplexity under."""

from __future__ import annotations

import json
import math
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medrl_lib.models.reference_lm import META_FILE, report_corpus
from medrl_lib.rl.oracle import OracleThinkingScorer
from medrl_lib.rl.thinking import ScoreResult, parse_score
from medrl_lib.scoring.metrics import (
    CrossEncoderSimilarity,
    MiniLMSimilarity,
    Perplexity,
    compute_metrics,
    context_ids,
    format_rate,
    record_well_formed,
    thinking_length,
)
from medrl_lib.training.standins import ensure_reference_lm

CT_TWO = json.dumps({"modality": "CT", "question_type": "location", "n_lesions": 2, "lesions": [
    {"quadrant": "upper left", "size": "small", "side": "left"},
    {"quadrant": "lower right", "size": "large", "side": "right"}]})  # 6 checkable facts

# ---------------------------------------------------------------------------------------------
# thinking length and compute_metrics
# ---------------------------------------------------------------------------------------------


def _record(completion: str, reasoning: str | None, tokens: int) -> Any:
    from medrl_lib.training.evaluate import Record
    from medrl_lib.rl.completions import well_formed

    return Record(id="a", modality="CT", prompt="p", completion=completion, extracted="A", answer="A", correct=True,
                  reasoning=reasoning, reasoning_tokens=tokens, n_options=4, well_formed=well_formed(completion))


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param({"reasoning": "two lesions", "reasoning_tokens": 17}, 17, id="reasoning"),  # measured
        pytest.param({"reasoning": None, "reasoning_tokens": 0}, None, id="no-think-block"),  # missing, not 0
        pytest.param({"reasoning": "", "reasoning_tokens": 0}, 0, id="empty-think-block"),  # a reasoning of 0 tokens
        pytest.param({"reasoning": "  ", "reasoning_tokens": 1}, 1, id="blank-think-block"),  # counts its tokens
        pytest.param(_record("<answer>A</answer>", None, 0), None, id="record-without-reasoning"),  # a Record
        pytest.param(_record("<think>x y</think><answer>A</answer>", "x y", 2), 2, id="record-with-reasoning"),
    ],
)
def test_thinking_length_counts_only_items_with_reasoning(record: Any, expected: int | None) -> None:
    assert thinking_length([record]) == [expected]


def test_thinking_length_mean_and_n() -> None:
    records = [{"reasoning": "a", "reasoning_tokens": 10}, {"reasoning": None, "reasoning_tokens": 0},
               {"reasoning": "b", "reasoning_tokens": 30}, {"reasoning": None, "reasoning_tokens": 0}]
    entry = compute_metrics([dict(r, correct=True, modality="CT") for r in records], n_boot=50)
    assert (entry["thinking_length"]["value"], entry["thinking_length"]["n"], entry["thinking_length"]["n_missing"]) == (
        20.0, 2, 2)  # the two items without reasoning are reported, not averaged in as 0
    assert thinking_length([]) == []


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param({"well_formed": True, "completion": "junk"}, True, id="field-wins"),  # the stored field
        pytest.param({"well_formed": False, "completion": "<think>x</think><answer>A</answer>"}, False, id="field-false"),
        pytest.param({"completion": "<think>x</think><answer>A</answer>", "reasoning": "x"}, True, id="old-record-ok"),
        pytest.param({"completion": "<think>x</think> A", "reasoning": "x"}, False, id="think-block-only"),  # not format
        pytest.param({"completion": "<think>x</think><answer>A</answer> ok", "reasoning": "x"}, False, id="text-after"),
        pytest.param({"completion": "A", "reasoning": None}, False, id="plain-answer"),  # no blocks
        pytest.param(_record("<think>x</think><answer>A</answer>", "x", 1), True, id="record-ok"),  # a Record
        pytest.param(_record("<think>x</think>A", "x", 1), False, id="record-think-only"),  # a Record
    ],
)
def test_record_well_formed_is_the_format_rule(record: Any, expected: bool) -> None:
    assert record_well_formed(record) is expected


@pytest.mark.parametrize(
    ("completions", "expected"),
    [
        pytest.param(["<think>x</think><answer>A</answer>"] * 3 + ["<think>x</think> A"], 75.0, id="one-think-only"),
        pytest.param(["<think>x</think> A", "<think>y</think>"], 0.0, id="think-blocks-are-not-format"),
        pytest.param([], math.nan, id="none"),
    ],
)
def test_format_rate(completions: list[str], expected: float) -> None:
    rate = format_rate([{"completion": c} for c in completions])
    assert rate == expected or (math.isnan(expected) and math.isnan(rate))


class FakeSimilarity:
    """Similarity 1.0 for equal texts, else 0.0; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], list[Any]]] = []

    def __call__(self, a: list[Any], b: list[Any]) -> list[float]:
        self.calls.append((list(a), list(b)))
        return [1.0 if x == y else 0.0 for x, y in zip(a, b)]


class FakeJudge:
    """Reads a 'score' straight from the reasoning text, like an LLM would output it."""

    def __call__(self, reasonings, *, questions=None, references=None, facts=None) -> ScoreResult:
        outputs = [r.split("=")[1] for r in reasonings]
        read = [parse_score(o) for o in outputs]
        return ScoreResult(read, sum(o == "none" for o in outputs), sum(o in ("11", "7.5") for o in outputs), outputs)


def records_for_metrics() -> list[dict[str, Any]]:
    return [
        {"correct": True, "modality": "MRI", "reasoning": "s=8", "reasoning_tokens": 10},
        {"correct": False, "modality": "MRI", "reasoning": "s=none", "reasoning_tokens": 20},
        {"correct": True, "modality": "CT", "reasoning": None, "reasoning_tokens": 0},
        {"correct": True, "modality": "X-ray", "reasoning": "s=11", "reasoning_tokens": 30},
        {"correct": False, "modality": "X-ray", "reasoning": "   ", "reasoning_tokens": 0},
        {"correct": True, "modality": "X-ray", "reasoning": "\n s=6\n", "reasoning_tokens": 40},  # sent stripped
    ]


def test_compute_metrics_with_fake_scorers() -> None:
    records = records_for_metrics()
    refs = ["s=8", "x", "y", "z", "w", "s=6"]
    sim = FakeSimilarity()
    m = compute_metrics(records, similarity=sim, perplexity=lambda texts: [float(len(t)) for t in texts],
                        thinking=FakeJudge(), reference_texts=refs, questions=["q"] * 6, n_boot=300)
    assert sorted(m) == ["accuracy", "accuracy/ct", "accuracy/mri", "accuracy/x-ray", "perplexity", "similarity",
                         "thinking_length", "thinking_reward"]
    assert m["accuracy"]["value"] == pytest.approx(400 / 6) and m["accuracy"]["n"] == 6
    assert m["accuracy/ct"] == {"value": 100.0, "low": 100.0, "high": 100.0, "n": 1, "n_missing": 0}
    assert m["accuracy/mri"]["value"] == 50.0 and m["accuracy/x-ray"]["value"] == pytest.approx(200 / 3)
    # the blank and missing reasonings are not sent to the scorers, and count as missing
    assert sim.calls == [(["s=8", "s=none", "s=11", "s=6"], ["s=8", "x", "z", "s=6"])]
    assert m["similarity"]["value"] == 0.5 and (m["similarity"]["n"], m["similarity"]["n_missing"]) == (4, 2)
    assert m["perplexity"]["value"] == pytest.approx((3 + 6 + 4 + 3) / 4) and m["perplexity"]["n_missing"] == 2
    # thinking reward: 8 and 6 scored, one unparseable, one out of range, two without reasoning
    tr = m["thinking_reward"]
    assert (tr["value"], tr["n"], tr["n_missing"], tr["n_unparseable"], tr["n_out_of_range"]) == (7.0, 2, 2, 1, 1)
    assert tr["n"] + tr["n_missing"] + tr["n_unparseable"] + tr["n_out_of_range"] == len(records)
    assert tr["low"] <= 7.0 <= tr["high"]
    # thinking length: the items with a think block (the blank one counts its 0 tokens); the one without is missing
    tl = m["thinking_length"]
    assert (tl["value"], tl["n"], tl["n_missing"]) == (pytest.approx(100 / 5), 5, 1)
    # deterministic given the seed
    again = compute_metrics(records, similarity=FakeSimilarity(), perplexity=lambda t: [float(len(x)) for x in t],
                            thinking=FakeJudge(), reference_texts=refs, questions=["q"] * 6, n_boot=300)
    assert json.dumps(again, sort_keys=True) == json.dumps(m, sort_keys=True)


def test_compute_metrics_skips_missing_scorers_and_checks_inputs() -> None:
    records = records_for_metrics()
    assert sorted(compute_metrics(records, n_boot=50)) == ["accuracy", "accuracy/ct", "accuracy/mri",
                                                            "accuracy/x-ray", "thinking_length"]
    with pytest.raises(ValueError, match="reference_texts"):
        compute_metrics(records, similarity=FakeSimilarity())  # similarity needs the gold texts
    with pytest.raises(ValueError, match="length mismatch"):
        compute_metrics(records, reference_texts=["a"])  # misaligned column
    with pytest.raises(ValueError, match="returned 1 values for 4"):
        compute_metrics(records, perplexity=lambda texts: [1.0])  # a scorer that loses items
    empty = compute_metrics([], n_boot=50)
    assert empty["accuracy"]["n"] == 0 and math.isnan(empty["accuracy"]["value"])


def test_compute_metrics_with_the_oracle_scorer() -> None:
    records = [{"correct": True, "modality": "CT", "reasoning": "Two lesions on CT.", "reasoning_tokens": 5},
               {"correct": False, "modality": "CT", "reasoning": "", "reasoning_tokens": 0}]
    m = compute_metrics(records, thinking=OracleThinkingScorer(), facts=[CT_TWO, "{}"], n_boot=50)
    # the real-data facts of the second item are never checked: it has no reasoning
    assert m["thinking_reward"] == {"value": 4.0, "low": 4.0, "high": 4.0, "n": 1, "n_missing": 1,
                                    "n_unparseable": 0, "n_out_of_range": 0}


# ---------------------------------------------------------------------------------------------
# MiniLM similarity (the real all-MiniLM-L6-v2 weights from the registry package)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> MiniLMSimilarity:
    return MiniLMSimilarity(batch_size=4)


def test_minilm_sanity(minilm: MiniLMSimilarity) -> None:
    text = "a small lesion in the upper left"
    close, far, itself = minilm([text] * 3, ["small lesion upper left", "the weather is sunny today", text])
    assert close > far  # related wording scores higher than an unrelated sentence
    assert itself == pytest.approx(1.0, abs=1e-5)  # identical texts: cosine 1
    assert close > 0.8 and far < 0.3


def test_minilm_missing_batching_and_pickling(minilm: MiniLMSimilarity) -> None:
    a = ["lesion in the lower right", None, "", "two lesions", "MRI of the head", "  "]
    b = ["lower right", "lower right", "x", "", "MRI", "CT"]
    scores = minilm(a, b)
    assert [math.isnan(s) for s in scores] == [False, True, True, True, False, True]  # missing on either side
    assert all(-1.0 <= s <= 1.0 for s in scores if not math.isnan(s))
    one_by_one = MiniLMSimilarity(batch_size=1)
    one_by_one._model, one_by_one._tokenizer = minilm._model, minilm._tokenizer  # no reload needed
    assert np.allclose(one_by_one(a, b), scores, atol=1e-5, equal_nan=True)  # padding changes nothing
    clone = pickle.loads(pickle.dumps(minilm))
    assert clone._model is None and minilm._model is not None  # the model is not pickled
    with pytest.raises(ValueError, match="length mismatch"):
        minilm(["a"], ["a", "b"])


# ---------------------------------------------------------------------------------------------
# cross-encoder similarity (a tiny locally built BERT cross-encoder: mechanics only)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_encoder_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A one-logit BERT cross-encoder and a two-label one, with a WordPiece tokenizer built here."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"a small large lesion in the upper lower left right"
             " mri ct x ray image two one of and".split(), *"abcdefghijklmnopqrstuvwxyz-.,"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(words))})
    root = tmp_path_factory.mktemp("cross")
    paths = []
    for labels in (1, 2):
        torch.manual_seed(0)
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, num_labels=labels)
        path = root / f"labels{labels}"
        BertForSequenceClassification(config).save_pretrained(path)
        tokenizer.save_pretrained(path)
        paths.append(str(path))
    return paths[0], paths[1]


def test_cross_encoder_similarity(cross_encoder_dirs: tuple[str, str]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path, two_labels = cross_encoder_dirs
    a = ["a small lesion in the upper left", None, "mri image", "two lesions of the lower right", "ct"]
    b = ["upper left", "left", "ct image", "one lesion", ""]
    scorer = CrossEncoderSimilarity(path, batch_size=2)
    scores = scorer(a, b)
    assert len(scores) == 5 and [math.isnan(s) for s in scores] == [False, True, False, False, True]
    assert all(0.0 <= s <= 1.0 for s in scores if not math.isnan(s))
    assert np.array_equal(scorer(a, b), scores, equal_nan=True)  # deterministic
    assert np.allclose(CrossEncoderSimilarity(path, batch_size=1)(a, b), scores, atol=1e-6, equal_nan=True)
    # the score is sigmoid of the single logit of the encoded pair
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path)
    with torch.no_grad():
        logit = model.eval()(**tokenizer(a[0], b[0], return_tensors="pt")).logits[0, 0]
    assert scores[0] == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)
    assert pickle.loads(pickle.dumps(scorer))._model is None
    with pytest.raises(ValueError, match="2 labels"):
        CrossEncoderSimilarity(two_labels)(["a"], ["b"])


# ---------------------------------------------------------------------------------------------
# the reference LM and perplexity
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_reference_lm(tmp_path_factory.mktemp("reflm"), n_items=100, steps=30, seed=1)


def test_reference_lm_is_built_once_and_reused(reference_lm: Path) -> None:
    meta = json.loads((reference_lm / META_FILE).read_text())
    assert meta["settings"]["n_items"] == 100 and meta["settings"]["steps"] == 30 and len(meta["corpus_ids"]) == 100
    assert meta["corpus_ids"][0] == "reflm-20001-000000"  # seed 20_000 + 1
    assert meta["final_loss"] < meta["first_loss"]  # it learned something
    stamp = (reference_lm / META_FILE).stat().st_mtime_ns
    again = ensure_reference_lm(reference_lm.parent, n_items=100, steps=30, seed=1)
    assert again == reference_lm and (reference_lm / META_FILE).stat().st_mtime_ns == stamp  # reused, not rebuilt
    # no temp folder left behind (the lock file beside the folder stays: medrl_lib.common.locks)
    assert [p.name for p in reference_lm.parent.iterdir() if not p.name.endswith(".lock")] == [reference_lm.name]
    with pytest.raises(ValueError, match="steps"):
        ensure_reference_lm(reference_lm.parent, steps=0)


def shuffled_words(texts: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for text in texts:
        words = text.split()
        while words == text.split():
            rng.shuffle(words)
        out.append(" ".join(words))
    return out


def test_reference_lm_prefers_reports_to_shuffled_reports(reference_lm: Path) -> None:
    _, held_out = report_corpus(30, 99)  # reports of items the LM never saw
    ppl = Perplexity(str(reference_lm), batch_size=8)
    real, shuffled = ppl(held_out), ppl(shuffled_words(held_out, 0))
    assert all(r < s for r, s in zip(real, shuffled))  # same words, report order is likelier, item by item
    assert float(np.mean(real)) * 5 < float(np.mean(shuffled))


def test_perplexity_batched_equals_one_by_one_and_a_hand_computation(reference_lm: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["MRI image showing one hyperintense lesion: a small lesion in the upper left.", "", None,
             "CT", "lesion lesion lesion", "X-ray image showing two opaque lesions.", " \n"]
    batched = Perplexity(str(reference_lm), batch_size=4)(texts)
    single = Perplexity(str(reference_lm), batch_size=1)(texts)
    assert [math.isnan(v) for v in batched] == [False, True, True, False, False, False, True]  # blank → NaN
    assert np.allclose(batched, single, rtol=1e-5, equal_nan=True)  # right padding + mask change nothing
    # by hand: the text after the reference LM's EOS token, every text token scored
    tokenizer = AutoTokenizer.from_pretrained(reference_lm)
    model = AutoModelForCausalLM.from_pretrained(reference_lm).eval()
    assert context_ids(tokenizer) == [tokenizer.eos_token_id]  # no BOS: the EOS token, as in training
    for index in (0, 3):  # a sentence, and "CT": a short text is scored too
        ids = [tokenizer.eos_token_id] + tokenizer(texts[index], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
        nll = -sum(float(logp[j, ids[j + 1]]) for j in range(len(ids) - 1)) / (len(ids) - 1)
        assert batched[index] == pytest.approx(math.exp(nll), rel=1e-4)


class PrefixTokenizer:
    """A fake tokenizer: ``prefix`` + one id per character (+ ``suffix``) when special tokens are added."""

    def __init__(self, prefix: list[int], suffix: list[int], bos: int | None, eos: int | None) -> None:
        self.prefix, self.suffix, self.bos_token_id, self.eos_token_id = prefix, suffix, bos, eos

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = [ord(c) for c in text]
        return {"input_ids": self.prefix + ids + self.suffix if add_special_tokens else ids}


@pytest.mark.parametrize(
    ("tokenizer", "expected"),
    [
        (PrefixTokenizer([2], [], bos=0, eos=2), [2]),  # BioGPT: the tokenizer puts </s> (2) first, not its BOS
        (PrefixTokenizer([1], [], bos=1, eos=2), [1]),  # Llama/Mistral: <s> first
        (PrefixTokenizer([], [2], bos=1, eos=2), [1]),  # EOS appended only: not a prefix, BOS used
        (PrefixTokenizer([], [], bos=None, eos=9), [9]),  # GPT-2/Qwen2 style: no BOS, the EOS token
        (PrefixTokenizer([], [], bos=None, eos=None), []),  # nothing: the first text token is the context
    ],
)
def test_context_ids(tokenizer: PrefixTokenizer, expected: list[int]) -> None:
    assert context_ids(tokenizer) == expected
