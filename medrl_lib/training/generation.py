"""Who answers the test items: the evaluation engines that :func:`medrl_lib.training.engines.eval_engine` resolves.

* **'hf'**: :func:`medrl_lib.training.evaluate.generate_records`, Hugging Face ``generate`` in batches (left padding, KV cache)
  on one device (``eval.device``), in this process.
* **'sharded'**: the same ``generate_records`` in one process per device (:func:`sharded_records`): the policy is
  saved to a folder, each process loads it onto its GPU and answers a contiguous share of the items
  (:func:`shard_indices`), and the shares are merged back into item order (:func:`merge_shards`).
* **'vllm'**: vLLM offline generation on one GPU (:func:`vllm_records`) from the saved folder, in a process of its own
  (the engine's memory goes back with the process, not through garbage collection in the notebook's kernel), with
  the prompt text
  (:func:`medrl_lib.training.evaluate.prompt_texts`), stop ids, suppressed vision tokens, decoding and scoring
  (:func:`medrl_lib.training.evaluate.make_record`) of ``generate_records``.

Equality. 'sharded' runs the computation of 'hf' and is keyed as 'hf' in run keys
(:func:`medrl_lib.training.engines.keyed_settings`): its greedy answers equal those of 'hf' up to batch-padding effects (a
shard's batches hold other items, so other left padding and other kernel shapes, which can flip a near-tie of the
greedy argmax). 'vllm' is keyed as itself: other kernels (paged attention, its own sampler) and its own image
preprocessing (Transformers' default backend, torchvision where installed, where ours is PIL's) give other numerics.
``benchmarks/gpu_eval_engines.py`` measures on a GPU the share of greedy completions each engine shares with 'hf'.
Sampled answers (``eval.greedy: false``) are draws of other random streams in every engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from medrl_lib.common.files import write_text
from medrl_lib.config import Profile
from medrl_lib.rl.rewards import ACCURACY_REQUIRES_FORMAT
from medrl_lib.training.evaluate import LetterRule, Record, make_record, prompt_texts

#: The folder, inside a run's folder, that holds the policy while 'sharded' or 'vllm' answers (removed after).
EVAL_MODEL = "eval_model"


class ShardError(RuntimeError):
    """A worker of :func:`sharded_records` failed; the message names its shard, items and device."""


class Answers(NamedTuple):
    """What :func:`answer_items` returns: a record per test item in item order, the engine that answered ('hf',
    'sharded' or 'vllm') and where (a torch device, or the devices of 'sharded' joined by commas)."""

    records: list[Record]
    engine: str
    device: str


def shard_indices(n: int, shards: int) -> list[range]:
    """``shards`` contiguous ranges covering ``0..n-1`` in order, balanced (sizes differ by at most one, the larger
    first); some are empty when ``n < shards``.

    >>> shard_indices(5, 2), shard_indices(1, 3)
    ([range(0, 3), range(3, 5)], [range(0, 1), range(1, 1), range(1, 1)])
    """
    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    size, extra = divmod(n, shards)
    out, start = [], 0
    for k in range(shards):
        stop = start + size + (k < extra)
        out.append(range(start, stop))
        start = stop
    return out


def merge_shards(parts: Sequence[Sequence[tuple[int, Record]]], n: int) -> list[Record]:
    """The records of every shard, given as ``(item index, record)`` pairs in any order, in item order; a
    ``ValueError`` unless every index of ``0..n-1`` comes exactly once."""
    by_index: dict[int, Record] = {}
    for part in parts:
        for index, record in part:
            if index in by_index:
                raise ValueError(f"item {index} was answered twice")
            by_index[index] = record
    missing = [i for i in range(n) if i not in by_index]
    if missing or len(by_index) != n:
        extra = sorted(set(by_index) - set(range(n)))
        raise ValueError(f"shards do not cover items 0..{n - 1}: missing {missing[:5]}, unexpected {extra[:5]}")
    return [by_index[i] for i in range(n)]


def _shard_worker(k: int, device: str, threads: int, model_dir: str, profile: Profile, shard, start: int,
                  gen_kwargs: dict, folder: str, vllm_settings: dict | None = None) -> None:
    """One process of :func:`sharded_records`: load the policy onto ``device``, answer ``shard`` (items ``start``..)
    and write ``shard-<k>.jsonl`` (one ``{"index", "record"}`` per line), or ``shard-<k>.error`` (the traceback).
    With ``vllm_settings`` (keyword arguments of :func:`vllm_records`), vLLM answers from the folder instead."""
    out = Path(folder)
    try:
        import torch

        if torch.device(device).type == "cuda":  # an unknown device fails here, before the slow imports
            torch.cuda.set_device(device)
        elif threads:
            torch.set_num_threads(threads)
        if vllm_settings is not None:
            from medrl_lib.models.loading import processor_class

            gen = {k: v for k, v in gen_kwargs.items() if k != "batch_size"}
            records = vllm_records(model_dir, processor_class().from_pretrained(model_dir), shard, **gen,
                                   **vllm_settings)
        else:
            from medrl_lib.training.evaluate import generate_records
            from medrl_lib.training.train import load_policy

            model, processor = load_policy(profile, model_dir, device=device)
            records = generate_records(model, processor, shard, desc=f"eval shard {k}", **gen_kwargs)
        lines = [json.dumps({"index": start + i, "record": dataclasses.asdict(r)}) for i, r in enumerate(records)]
        write_text(out / f"shard-{k}.jsonl", "".join(line + "\n" for line in lines))
    except Exception:  # noqa: BLE001 - any failure goes to the parent, which names the shard
        write_text(out / f"shard-{k}.error", traceback.format_exc())
        raise SystemExit(1) from None


def sharded_records(model_dir: str, profile: Profile, ds, devices: Sequence[str], *, batch_size: int = 32,
                    max_new_tokens: int = 128, mode: str = "reasoning", greedy: bool = True, temperature: float = 1.0,
                    require_format: bool = ACCURACY_REQUIRES_FORMAT, letter_rule: LetterRule = "strict",
                    work_dir: str | Path | None = None, poll_s: float = 0.5,
                    vllm_settings: dict | None = None) -> list[Record]:
    """Answer ``ds`` with :func:`medrl_lib.training.evaluate.generate_records` in one spawned process per entry of
    ``devices`` (``"cuda:0"``, ... or ``"cpu"``), each loading the policy saved at ``model_dir`` with
    :func:`medrl_lib.training.train.load_policy` and answering its share of the items (:func:`shard_indices`). Each writes
    its records to a JSON-lines file in a temporary folder under ``work_dir`` (default: the system's); they are
    merged in item order. A failed worker stops the others and raises :class:`ShardError` naming its shard and
    device, with its traceback. CPU workers share the machine's cores."""
    import torch.multiprocessing as mp

    if not devices:
        raise ValueError("sharded_records needs at least one device")
    gen_kwargs = {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "mode": mode, "greedy": greedy,
                  "temperature": temperature, "require_format": require_format, "letter_rule": letter_rule}
    ranges = shard_indices(len(ds), len(devices))
    threads = max(1, (os.cpu_count() or 1) // max(1, sum(d == "cpu" for d in devices)))
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="eval-shards-", dir=work_dir) as folder:
        jobs = []
        for k, (r, device) in enumerate(zip(ranges, devices)):
            if len(r):
                proc = ctx.Process(target=_shard_worker, name=f"eval-shard-{k}",
                                   args=(k, device, threads, model_dir, profile, ds.select(r), r.start, gen_kwargs,
                                         folder, vllm_settings))
                proc.start()
                jobs.append((k, r, device, proc))
        failed = None
        try:
            while failed is None and any(p.is_alive() for *_, p in jobs):
                failed = next((job for job in jobs if job[3].exitcode not in (None, 0)), None)
                if failed is None:
                    time.sleep(poll_s)
        finally:  # a failed shard (or an interruption) stops the others: their answers are of no use
            for *_, proc in jobs:
                if proc.is_alive():
                    proc.terminate()
                proc.join()
        parts = []
        for k, r, device, proc in ([failed] if failed else []) + jobs:
            where = f"evaluation shard {k} (items {r.start}..{r.stop - 1}) on {device}"
            error, result = Path(folder) / f"shard-{k}.error", Path(folder) / f"shard-{k}.jsonl"
            if error.exists():
                trace = error.read_text().rstrip()
                raise ShardError(f"{where} failed: {trace.splitlines()[-1]}\n{trace}")
            if proc.exitcode != 0 or not result.exists():
                raise ShardError(f"{where} ended with exit code {proc.exitcode} and no records")
            rows = [json.loads(line) for line in result.read_text().splitlines() if line]
            parts.append([(row["index"], Record(**row["record"])) for row in rows])
    return merge_shards(parts, len(ds))


def _image_token_bound(processor) -> int:
    """The most placeholder tokens one image becomes: the image processor's pixel limit over the pixels of one
    merged patch (``(patch_size * merge_size)**2``, 28 x 28 for Qwen2-VL)."""
    from medrl_lib.rl.vllm_inputs import pixel_limits

    ip = processor.image_processor
    unit = ip.patch_size * ip.merge_size
    return -(-pixel_limits(ip)[1] // (unit * unit))


def vllm_engine_kwargs(model_dir: str, processor, texts: Sequence[str], *, max_new_tokens: int,
                       gpu_memory_utilization: float, dtype: str = "auto", max_model_len: int | None = None) -> dict:
    """Keyword arguments of ``vllm.LLM`` for the policy saved at ``model_dir``: one image per prompt, seed 0, and a
    context (``max_model_len``, default) that holds the longest prompt of ``texts`` with its image at the
    processor's pixel limit and ``max_new_tokens`` more."""
    if max_model_len is None:
        tokens = processor.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        longest = max((len(t) for t in tokens), default=0)  # each text holds one <|image_pad|>: the image's place
        max_model_len = longest - 1 + _image_token_bound(processor) + max_new_tokens
    from medrl_lib.rl.vllm_inputs import engine_kwargs, vllm_is_cpu_build

    return {"model": str(model_dir), **engine_kwargs(processor.image_processor), "seed": 0, "dtype": dtype,
            "gpu_memory_utilization": gpu_memory_utilization, "max_model_len": int(max_model_len),
            **({"enforce_eager": True} if vllm_is_cpu_build() else {})}


def vllm_sampling_kwargs(model_dir: str, tokenizer, *, max_new_tokens: int, greedy: bool = True,
                         temperature: float = 1.0) -> dict:
    """Keyword arguments of ``vllm.SamplingParams`` that sample as :func:`medrl_lib.training.evaluate.generate_records`
    does: greedy (temperature 0) or plain temperature sampling (no top-p, no top-k: 0 is vLLM's "off"), no
    repetition penalty, the same stop ids (:func:`medrl_lib.models.loading.eos_token_ids` of the saved generation config and
    the tokenizer), vision tokens never generated (a logit bias of minus infinity, as ``suppress_tokens``)."""
    from transformers import AutoConfig, GenerationConfig

    from medrl_lib.models.loading import eos_token_ids, vision_token_ids

    try:
        generation_config = GenerationConfig.from_pretrained(model_dir)
    except OSError:  # a folder without generation_config.json: the tokenizer's EOS alone
        generation_config = None
    stop = eos_token_ids(SimpleNamespace(generation_config=generation_config), tokenizer)
    suppressed = vision_token_ids(SimpleNamespace(config=AutoConfig.from_pretrained(model_dir)))
    return {"n": 1, "temperature": 0.0 if greedy else temperature, "top_p": 1.0, "top_k": 0,
            "repetition_penalty": 1.0, "max_tokens": max_new_tokens, "stop_token_ids": stop,
            "skip_special_tokens": True, "logit_bias": {i: float("-inf") for i in suppressed} or None}


def vllm_records(model_dir: str, processor, ds, *, max_new_tokens: int = 128, greedy: bool = True,
                 temperature: float = 1.0, mode: str = "reasoning", require_format: bool = ACCURACY_REQUIRES_FORMAT,
                 letter_rule: LetterRule = "strict", gpu_memory_utilization: float = 0.85, dtype: str = "auto",
                 max_model_len: int | None = None, llm_factory=None) -> list[Record]:
    """Answer ``ds`` with vLLM offline generation of the policy saved at ``model_dir`` (:func:`vllm_engine_kwargs`,
    :func:`vllm_sampling_kwargs`): the prompts of :func:`medrl_lib.training.evaluate.prompt_texts` with each item's image,
    completions decoded from their token ids by ``processor``'s tokenizer (skipping special tokens, as
    ``generate_records`` does) and scored by :func:`medrl_lib.training.evaluate.make_record`. vLLM returns outputs in the
    order of the prompts. ``llm_factory`` stands for ``vllm.LLM`` (tests: an object whose ``generate(prompts,
    params)`` returns items with ``.outputs[0].token_ids``); without vLLM installed it gets the sampling settings as
    a namespace."""
    from medrl_lib.training.engines import free_accelerator
    from medrl_lib.rl.vllm_inputs import fit_image

    cols = ds.select_columns(["id", "modality", "question", "options", "answer"])[:]
    texts = prompt_texts(processor, cols["question"], cols["options"], mode)
    tokenizer = processor.tokenizer
    sampling = vllm_sampling_kwargs(model_dir, tokenizer, max_new_tokens=max_new_tokens, greedy=greedy,
                                    temperature=temperature)
    engine = vllm_engine_kwargs(model_dir, processor, texts, max_new_tokens=max_new_tokens,
                                gpu_memory_utilization=gpu_memory_utilization, dtype=dtype,
                                max_model_len=max_model_len)
    try:
        import vllm

        factory, params = llm_factory or vllm.LLM, vllm.SamplingParams(**sampling)
    except ImportError:
        if llm_factory is None:
            raise ImportError("eval.engine 'vllm' needs the vllm package (pip install -e .[vllm])") from None
        factory, params = llm_factory, SimpleNamespace(**sampling)
    llm = factory(**engine)
    try:
        prompts = [{"prompt": text, "multi_modal_data": {"image": fit_image(image, processor.image_processor)}}
                   for text, image in zip(texts, ds["image"])]
        outputs = llm.generate(prompts, params)
        completions = tokenizer.batch_decode([list(o.outputs[0].token_ids) for o in outputs], skip_special_tokens=True)
    finally:
        del llm  # the engine's GPU memory goes back before the metric models load
        free_accelerator()
    if len(completions) != len(texts):
        raise RuntimeError(f"vLLM returned {len(completions)} completions for {len(texts)} prompts")
    return [make_record(tokenizer, {k: cols[k][i] for k in ("id", "modality", "options", "answer")}, texts[i],
                        completion, mode=mode, require_format=require_format, letter_rule=letter_rule)
            for i, completion in enumerate(completions)]


def save_policy(model, processor, profile: Profile, folder: str | Path) -> Path:
    """Save ``model`` (moved to the CPU, in the profile's dtype) and ``processor`` to ``folder`` so that
    :func:`medrl_lib.training.train.load_policy` loads them back as the profile loads its policies (a tiny profile's folder
    gets the tiny marker)."""
    import torch

    from medrl_lib.models.loading import TINY_MARKER

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    model.to(device="cpu", dtype=getattr(torch, profile.model.dtype))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if profile.model.kind == "tiny":
        (folder / TINY_MARKER).write_text("{}")
    return folder


def answer_items(model, processor, profile: Profile, test, prompt_mode: str | None = None,
                 out_dir: str | Path | None = None) -> Answers:
    """Answer the test items with the engine :func:`medrl_lib.training.engines.eval_engine` resolves for ``profile`` here.

    'hf': the policy moves to ``eval.device`` in the profile's dtype and :func:`generate_records` answers. 'sharded'
    and 'vllm': the policy is saved to ``<out_dir>/eval_model`` (a temporary folder without ``out_dir``), leaves
    the GPU, and :func:`sharded_records` (every visible GPU) or :func:`vllm_records` answers from that folder,
    which is removed afterwards."""
    import torch

    from medrl_lib.training import engines
    from medrl_lib.training.engines import free_accelerator
    from medrl_lib.training.evaluate import generate_records  # looked up at each call: tests replace it
    from medrl_lib.training.train import eval_device

    e = profile.eval
    gen = {"max_new_tokens": e.max_new_tokens, "mode": prompt_mode or e.prompt_mode, "greedy": e.greedy,
           "temperature": e.temperature, "require_format": e.accuracy_requires_format, "letter_rule": e.letter_rule}
    engine = engines.eval_engine(profile)
    if engine == "hf":
        device = eval_device(profile)
        model.to(device=device, dtype=getattr(torch, profile.model.dtype))  # a single process trains in float32
        return Answers(generate_records(model, processor, test, batch_size=e.batch_size, **gen), engine, str(device))
    if engine not in ("sharded", "vllm"):
        raise ValueError(f"unknown evaluation engine {engine!r}")
    with (tempfile.TemporaryDirectory(prefix="eval-") if out_dir is None else contextlib.nullcontext(out_dir)) as base:
        folder = save_policy(model, processor, profile, Path(base) / EVAL_MODEL)
        free_accelerator()  # the engines load the policy on GPUs that the trained policy has left
        try:
            if engine == "sharded":
                devices = [f"cuda:{i}" for i in range(engines.gpu_count())]
                records = sharded_records(str(folder), profile, test, devices, batch_size=e.batch_size,
                                          work_dir=base, **gen)
                return Answers(records, engine, ",".join(devices))
            # in a process of its own: the GPU is whole again when it returns, whatever the engine leaves behind
            device = "cuda:0" if engines.gpu_count() else "cpu"
            records = sharded_records(str(folder), profile, test, [device], batch_size=e.batch_size, work_dir=base,
                                      vllm_settings={"gpu_memory_utilization": e.vllm_gpu_memory_utilization,
                                                     "dtype": profile.model.dtype}, **gen)
            return Answers(records, engine, device)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
