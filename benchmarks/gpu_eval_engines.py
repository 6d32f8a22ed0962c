"""The evaluation engines on one fixed batch of items: items/s of 'hf', 'sharded' and 'vllm', the share of greedy
completions each shares with 'hf' (exact string match) and each engine's accuracy, as one JSON line.

'hf' is :func:`medrl_lib.training.evaluate.generate_records` on one device; 'sharded' runs it in one process per GPU
(``--devices``, default every visible GPU; needs two or more unless named) and 'vllm' is vLLM offline generation
(needs the vllm package and a GPU), both from the policy saved to a folder (:mod:`medrl_lib.training.generation`). Their
times include starting their processes or engine and loading the policy, as an evaluation pays them.

On a GPU the default model is Qwen2-VL-2B's architecture with random weights (``--architecture qwen2-vl-2b``,
``benchmarks/paper_shapes.py``), prompted with the rehearsal profile's settings (the paper's pixel cap), so that
start-up does not dominate as it does for a tiny model. Elsewhere the default model is the tiny random Qwen2-VL of
the smoke profile (its trained tokenizer and processor, random
weights) with Gaussian noise (``--noise``) added to its language model, so that completions differ between items
(the bare random model writes the same token for every item, and every engine would trivially agree).

    python benchmarks/gpu_eval_engines.py                                    # on a GPU: every engine it has
    python benchmarks/gpu_eval_engines.py --record                           # figures into medrl estimate's file
    python benchmarks/gpu_eval_engines.py --model PATH --profile paper       # a saved Qwen2-VL policy
    python benchmarks/gpu_eval_engines.py --engines hf,sharded --devices cuda:0,cuda:0   # two processes, one GPU
    python benchmarks/gpu_eval_engines.py --engines hf --items 4             # anywhere, CPU included
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ENGINES = ("hf", "sharded", "vllm")


def tiny_policy(profile, noise: float, seed: int = 0):
    """The smoke profile's random tiny model (built once in its cache) with ``noise`` times standard Gaussian noise
    added to every weight of its language model: ``(model, processor)``."""
    import dataclasses

    import torch

    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    random_init = dataclasses.replace(profile, standins=dataclasses.replace(
        profile.standins, base=dataclasses.replace(profile.standins.base, steps=0)))
    model, processor = load_policy(profile, ensure_start_model(random_init, "base"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.model.language_model.parameters():
            p.add_(noise * torch.randn(p.shape, generator=generator).to(p.dtype))
    return model, processor


def eval_items(profile, n: int):
    """The first ``n`` synthetic test items of ``profile`` (enough per modality generated to have ``n``)."""
    import dataclasses

    from medrl_lib.data.splits import make_splits

    per = math.ceil(n / len(profile.data.test_modalities))
    _, test = make_splits(dataclasses.replace(profile, data=dataclasses.replace(profile.data, test_per_modality=per)))
    return test.select(range(min(n, len(test))))


def _summary(records, seconds: float, reference, tokenizer=None) -> dict:
    row = {"seconds": seconds, "items_per_s": len(records) / max(seconds, 1e-9),
           "accuracy": sum(r.correct for r in records) / max(1, len(records))}
    if tokenizer is not None:  # answer tokens per second, as medrl estimate's 'evaluation' figures count them
        tokens = sum(len(ids) for ids in tokenizer([r.completion for r in records], add_special_tokens=False)["input_ids"])
        row["answer_tokens_per_s"] = tokens / max(seconds, 1e-9)
    if reference is not None:
        row["equal_to_hf"] = sum(a.completion == b.completion for a, b in zip(records, reference)) / max(1, len(records))
    return row


def parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="smoke", help="profile whose settings load the model and make the items")
    ap.add_argument("--model", help="a saved policy folder (default: a tiny profile's random model with noise, a "
                    "hub profile's instruct model)")
    ap.add_argument("--architecture", choices=["qwen2-vl-2b", "tiny"], default=None,
                    help="the default model: Qwen2-VL-2B's architecture with random weights (default on a GPU) or the "
                    "smoke profile's tiny model (default elsewhere)")
    ap.add_argument("--work-dir", help="where the qwen2-vl-2b model is made (default: a temporary folder)")
    ap.add_argument("--noise", type=float, default=0.1, help="noise added to the default tiny model's weights")
    ap.add_argument("--cache-dir", help="where the tiny model is built (default: the profile's cache_dir)")
    ap.add_argument("--engines", default="auto", help="comma-separated among hf,sharded,vllm; auto: all this "
                    "machine can run")
    ap.add_argument("--devices", help="comma-separated devices of 'sharded' (default: every visible GPU)")
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", help="weights dtype (default: bfloat16 on a GPU, else the profile's)")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--json", help="also write the result to this file")
    ap.add_argument("--record", action="store_true", help="write each engine's answer tokens/s where medrl estimate "
                    "reads them (the 2B architecture only)")
    ap.add_argument("--throughput-file", help="the file --record writes (default: the package's)")
    return ap


def record(result: dict, path: str | None) -> list[str]:
    """Write each engine's answer tokens/s of ``result`` as its 'evaluation' figure (per GPU: 'sharded' divided by
    its devices) into the throughput file (default: the package's)."""
    import datetime

    from medrl_lib.ops.estimate import gpu_key, record_throughput

    gpu = gpu_key(result["device"])
    source = (f"measured by benchmarks/gpu_eval_engines.py on {datetime.date.today().isoformat()} ({result['device']}, "
              f"{result['items']} items, batches of {result['batch_size']}, up to {result['max_new_tokens']} tokens, "
              f"{result['model']})")
    lines = []
    for engine, row in result["engines"].items():
        if "answer_tokens_per_s" not in row:
            continue
        value = row["answer_tokens_per_s"] / len(row.get("devices", [0]))
        name = "vllm" if engine == "vllm" else "hf"
        if engine == "sharded":
            continue  # the same computation as 'hf', per GPU
        record_throughput(gpu, name, "evaluation", value, "answer tokens/s per GPU (greedy)", source, path=path,
                          device=result["device"])
        lines.append(f"recorded {gpu} {name} evaluation: {value:,.1f} answer tokens/s")
    return lines


def run(a: argparse.Namespace) -> dict:
    """Answer the items with each engine of ``a`` (:func:`parser`); returns the result that :func:`main` prints."""
    import torch

    from medrl_lib.config import load_profile
    from medrl_lib.training.engines import gpu_count, vllm_installed
    from medrl_lib.training.evaluate import generate_records
    from medrl_lib.training.generation import save_policy, sharded_records, vllm_records
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    gpus = gpu_count()
    architecture = a.architecture or ("qwen2-vl-2b" if gpus else "tiny")
    if architecture == "qwen2-vl-2b" and not a.model:
        from paper_shapes import policy_folder

        a.model = str(policy_folder(Path(a.work_dir or tempfile.mkdtemp(prefix="qwen2-vl-2b-")), "paper"))
        a.profile = "rehearsal" if a.profile == "smoke" else a.profile
    overrides = {"model.dtype": a.dtype or ("bfloat16" if gpus else None), "cache_dir": a.cache_dir}
    profile = load_profile(a.profile, {k: v for k, v in overrides.items() if v is not None})
    devices = a.devices.split(",") if a.devices else [f"cuda:{i}" for i in range(gpus)]
    engines = [e for e in ENGINES if e != "sharded" or len(devices) >= 2] if a.engines == "auto" else a.engines.split(",")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise SystemExit(f"unknown engines {unknown}; choose among {', '.join(ENGINES)}")
    items = eval_items(profile, a.items)
    if a.model or profile.model.kind == "hub":
        name = a.model or ensure_start_model(profile, "instruct")
        model, processor = load_policy(profile, name)
    else:
        name, (model, processor) = f"tiny random + noise {a.noise}", tiny_policy(profile, a.noise)
    gen = {"max_new_tokens": a.max_new_tokens, "mode": profile.eval.prompt_mode, "greedy": True}
    device = "cuda:0" if gpus else "cpu"
    result = {"device": torch.cuda.get_device_name(0) if gpus else "cpu", "gpus": gpus, "model": str(name),
              "dtype": profile.model.dtype, "items": len(items),
              "batch_size": a.batch_size, "max_new_tokens": a.max_new_tokens, "engines": {}}
    with tempfile.TemporaryDirectory(prefix="eval-engines-") as tmp:
        model.to(device=device, dtype=getattr(torch, profile.model.dtype))
        generate_records(model, processor, items.select(range(min(2, len(items)))), batch_size=2, **gen)  # warm-up
        t0 = time.perf_counter()
        reference = generate_records(model, processor, items, batch_size=a.batch_size, **gen)  # every engine's yardstick
        hf_s = time.perf_counter() - t0
        folder = save_policy(model, processor, profile, Path(tmp) / "eval_model")  # the model leaves the GPU
        for engine in engines:
            if engine == "hf":
                result["engines"]["hf"] = _summary(reference, hf_s, reference, processor.tokenizer)
                continue
            if engine == "sharded" and len(devices) < 2:
                result["engines"][engine] = {"skipped": f"{len(devices)} device(s); pass --devices"}
                continue
            if engine == "vllm" and not (vllm_installed() and gpus):
                result["engines"][engine] = {"skipped": "needs the vllm package and a GPU"}
                continue
            t0 = time.perf_counter()
            try:
                if engine == "sharded":
                    records = sharded_records(str(folder), profile, items, devices, batch_size=a.batch_size,
                                              work_dir=tmp, **gen)
                else:
                    records = vllm_records(str(folder), processor, items, dtype=profile.model.dtype,
                                           gpu_memory_utilization=a.gpu_memory_utilization, **gen)
            except Exception as exc:  # noqa: BLE001 - one engine's failure is reported, the others still run
                result["engines"][engine] = {"error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
                continue
            result["engines"][engine] = _summary(records, time.perf_counter() - t0, reference, processor.tokenizer)
            if engine == "sharded":
                result["engines"][engine]["devices"] = devices
    return result


def measure_architecture(scale: str, work: Path) -> dict:
    """The GPU acceptance's part: every engine that runs here on 12 test items, Qwen2-VL-2B's architecture at the
    paper's scale, the rehearsal's stand-in at the rehearsal's."""
    argv = ["--items", "12", "--max-new-tokens", "64", "--batch-size", "12", "--work-dir", str(work)]
    argv += ["--architecture", "qwen2-vl-2b"] if scale == "paper" else ["--profile", "rehearsal"]
    return run(parser().parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """Print the result as one JSON line; exit status 1 when an engine that was asked for failed."""
    a = parser().parse_args(argv)
    line = json.dumps(result := run(a))
    print(line, flush=True)
    if a.json:
        Path(a.json).write_text(line + "\n")
    if a.record:
        if "qwen2-vl-2b-random" not in result["model"] and not a.throughput_file:
            raise SystemExit("gpu_eval_engines.py: --record without --throughput-file needs the 2B architecture "
                             "(--architecture qwen2-vl-2b): the package's figures are Qwen2-VL-2B's")
        for rec in record(result, a.throughput_file):
            print(rec)
    return 1 if any("error" in row for row in result["engines"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
