"""The evaluation engines of medrl_lib.training.generation: sharding arithmetic, 'sharded' over two CPU processes and the
'vllm' branch with a stand-in engine both giving the records of one-process generate_records, a failed worker
named, answer_items' dispatch, and the GPU check script on CPU."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from medrl_lib.rl import vllm_inputs

from medrl_lib.training.generation import ShardError, merge_shards, shard_indices

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 8


@pytest.mark.parametrize("n, shards, sizes", [
    pytest.param(10, 3, [4, 3, 3], id="remainder-first"),  # the first n % shards shards take one more
    pytest.param(8, 2, [4, 4], id="even"),  # equal halves
    pytest.param(1, 3, [1, 0, 0], id="fewer-items"),  # more shards than items: empty shards, nothing lost
    pytest.param(0, 2, [0, 0], id="empty"),  # no items at all
    pytest.param(7, 1, [7], id="one-shard"),  # one shard is everything
])
def test_shard_indices_are_contiguous_and_balanced(n, shards, sizes):
    ranges = shard_indices(n, shards)
    assert [len(r) for r in ranges] == sizes
    assert [i for r in ranges for i in r] == list(range(n))  # contiguous, in order, each item once


def test_shard_indices_rejects_no_shards():
    with pytest.raises(ValueError, match="at least 1"):
        shard_indices(4, 0)


def test_merge_restores_item_order_and_checks_coverage():
    parts = [[(3, "d"), (2, "c")], [(0, "a"), (1, "b")]]  # shards finish in any order, lines in any order
    assert merge_shards(parts, 4) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="missing \\[3\\]"):
        merge_shards([[(0, "a"), (1, "b"), (2, "c")]], 4)  # a shard lost an item
    with pytest.raises(ValueError, match="item 1 was answered twice"):
        merge_shards([[(0, "a"), (1, "b")], [(1, "b")]], 2)  # overlapping shards


@pytest.fixture(scope="module")
def tiny(smoke_profile, tmp_path_factory):
    """The smoke profile's tiny random policy with noisy weights (its completions differ between items), saved to a
    folder; 8 test items; generate_records of them in one process, in batches of 4 and of 1."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_eval_engines import eval_items, tiny_policy

    from medrl_lib.training.evaluate import generate_records
    from medrl_lib.training.generation import save_policy

    model, processor = tiny_policy(smoke_profile, noise=0.1)
    folder = save_policy(model, processor, smoke_profile, tmp_path_factory.mktemp("policy") / "eval_model")
    items = eval_items(smoke_profile, 8)
    ref = {bs: generate_records(model, processor, items, batch_size=bs, max_new_tokens=NEW_TOKENS) for bs in (4, 1)}
    assert len({r.completion for r in ref[4]}) > 2  # items get different answers: order mistakes would show
    return NS(profile=smoke_profile, model=model, processor=processor, folder=folder, items=items, ref=ref)


def test_sharded_over_two_cpu_processes_equals_one_process(tiny):
    from medrl_lib.training.generation import sharded_records

    # shards of 4 answered in batches of 4: the very batches of the one-process run, so equal to the last bit
    got = sharded_records(str(tiny.folder), tiny.profile, tiny.items, ["cpu", "cpu"], batch_size=4,
                          max_new_tokens=NEW_TOKENS)
    assert [r.id for r in got] == tiny.items["id"]
    assert got == tiny.ref[4]  # every field: completion, extracted, correct, prompt, reasoning tokens ...


def test_a_failed_worker_is_named_with_its_shard_and_device(tiny):
    from medrl_lib.training.generation import sharded_records

    with pytest.raises(ShardError, match=r"shard 1 \(items 4\.\.7\) on nodevice failed: RuntimeError"):
        sharded_records(str(tiny.folder), tiny.profile, tiny.items, ["cpu", "nodevice"], batch_size=4,
                        max_new_tokens=NEW_TOKENS, poll_s=0.1)


def fake_llm(model, processor):
    """A stand-in for ``vllm.LLM`` (not installed in this environment; the real engine answers the rehearsal's items
    in tests/vllm, test_greedy_evaluation_agrees_item_by_item): keeps its keyword arguments, and answers each prompt
    alone with the tiny HF model's ``generate`` under the sampling settings it is given (greedy, stop ids, suppressed
    tokens)."""
    tokenizer = processor.tokenizer
    built: list[dict] = []

    class FakeLLM:
        def __init__(self, **kwargs):
            built.append(kwargs)

        def generate(self, prompts, params, **kwargs):
            outs = []
            for prompt in prompts:
                enc = processor(text=[prompt["prompt"]], images=[prompt["multi_modal_data"]["image"]],
                                return_tensors="pt")
                suppressed = [i for i, bias in (params.logit_bias or {}).items() if bias == float("-inf")]
                out = model.generate(**enc, max_new_tokens=params.max_tokens, do_sample=params.temperature > 0,
                                     eos_token_id=params.stop_token_ids, suppress_tokens=suppressed or None,
                                     pad_token_id=tokenizer.pad_token_id, use_cache=True,
                                     repetition_penalty=params.repetition_penalty)
                ids = out[0, enc["input_ids"].shape[1]:].tolist()
                outs.append(NS(outputs=[NS(text=tokenizer.decode(ids, skip_special_tokens=True), token_ids=ids)]))
            FakeLLM.params = params
            return outs

    FakeLLM.built = built
    return FakeLLM


def test_vllm_branch_gives_the_records_of_generate_records(tiny):
    from medrl_lib.training.generation import vllm_records
    from medrl_lib.models.loading import eos_token_ids, vision_token_ids

    llm = fake_llm(tiny.model, tiny.processor)
    got = vllm_records(str(tiny.folder), tiny.processor, tiny.items, max_new_tokens=NEW_TOKENS, greedy=True,
                       gpu_memory_utilization=0.5, llm_factory=llm)
    assert got == tiny.ref[1]  # same prompts, stop ids, decoding and scoring as generate_records, one item a batch
    [engine] = llm.built
    assert (engine["model"], engine["limit_mm_per_prompt"], engine["seed"], engine["gpu_memory_utilization"]) == \
        (str(tiny.folder), {"image": 1, "video": 0}, 0, 0.5)
    low, high = vllm_inputs.pixel_limits(tiny.processor.image_processor)  # vLLM resizes as the policy's processor
    assert engine["mm_processor_kwargs"] == {"size": {"shortest_edge": low, "longest_edge": high}}
    longest = max(len(tiny.processor(text=[r.prompt], images=[im])["input_ids"][0])
                  for r, im in zip(got, tiny.items["image"]))
    assert longest + NEW_TOKENS <= engine["max_model_len"] <= longest + NEW_TOKENS + 64  # holds prompt + answer
    p = llm.params
    assert (p.temperature, p.top_p, p.top_k, p.max_tokens) == (0.0, 1.0, 0, NEW_TOKENS)  # greedy, no truncation
    assert p.stop_token_ids == eos_token_ids(tiny.model, tiny.processor.tokenizer)
    assert sorted(p.logit_bias) == vision_token_ids(tiny.model)  # vision tokens never generated


@pytest.mark.parametrize("engine, called, device", [
    pytest.param("hf", "generate_records", "cpu", id="hf"),  # in this process on eval.device, as before engines
    pytest.param("sharded", "sharded_records", "cuda:0,cuda:1", id="sharded"),  # every visible GPU (two, faked)
    pytest.param("vllm", "sharded_records", "cuda:0", id="vllm"),  # vLLM from the saved folder, in a process of its own
])
def test_answer_items_dispatches_on_the_resolved_engine(engine, called, device, tiny, monkeypatch, tmp_path):
    from medrl_lib.training import engines, evaluate, generation
    from medrl_lib.models.loading import TINY_MARKER

    calls = []

    def recorder(name):
        def fake(*args, **kwargs):
            saved = name != "generate_records" and all((Path(args[0]) / f).exists()
                                                       for f in ("config.json", TINY_MARKER))
            calls.append((name, args, kwargs, saved))
            return ["answered"]
        return fake

    monkeypatch.setattr(engines, "eval_engine", lambda profile: engine)
    monkeypatch.setattr(engines, "gpu_count", lambda: 2)
    for name in ("sharded_records", "vllm_records"):
        monkeypatch.setattr(generation, name, recorder(name))
    monkeypatch.setattr(evaluate, "generate_records", recorder("generate_records"))
    got = generation.answer_items(tiny.model, tiny.processor, tiny.profile, tiny.items, "plain", tmp_path)
    assert tuple(got) == (["answered"], engine, device)
    [(name, args, kwargs, saved)] = calls
    e = tiny.profile.eval
    assert name == called
    assert kwargs["mode"] == "plain" and kwargs["max_new_tokens"] == e.max_new_tokens and kwargs["greedy"] == e.greedy
    assert (kwargs["require_format"], kwargs["letter_rule"]) == (e.accuracy_requires_format, e.letter_rule)
    if engine == "hf":
        assert args == (tiny.model, tiny.processor, tiny.items) and kwargs["batch_size"] == e.batch_size
    else:  # the policy was saved where load_policy reads it back, and the folder is gone afterwards
        assert saved and args[0] == str(tmp_path / "eval_model") and not (tmp_path / "eval_model").exists()
    if engine == "sharded":
        assert args[3] == ["cuda:0", "cuda:1"] and kwargs["batch_size"] == e.batch_size
        assert kwargs.get("vllm_settings") is None
    if engine == "vllm":  # one worker process on the first GPU, which answers with vLLM (fails on 2c2ad0e^: in-process)
        assert args[3] == ["cuda:0"]
        assert kwargs["vllm_settings"] == {"gpu_memory_utilization": e.vllm_gpu_memory_utilization,
                                           "dtype": tiny.profile.model.dtype}


def test_sharded_setting_without_two_gpus_answers_with_hf(tiny, monkeypatch):
    import dataclasses

    from medrl_lib.training import engines, evaluate, generation

    profile = dataclasses.replace(tiny.profile, eval=dataclasses.replace(tiny.profile.eval, engine="sharded"))
    monkeypatch.setattr(engines, "gpu_count", lambda: 1)
    monkeypatch.setattr(evaluate, "generate_records", lambda *a, **k: ["answered"])
    assert tuple(generation.answer_items(tiny.model, tiny.processor, profile, tiny.items)) == (["answered"], "hf", "cpu")


@pytest.mark.skipif(__import__("importlib").util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_without_the_package_says_how_to_install_it(tiny):
    from medrl_lib.training.generation import vllm_records

    with pytest.raises(ImportError, match=r"pip install -e \.\[vllm\]"):
        vllm_records(str(tiny.folder), tiny.processor, tiny.items.select(range(1)), max_new_tokens=2)


def test_gpu_script_runs_hf_on_cpu(tiny, capsys):
    from gpu_eval_engines import main  # benchmarks/ is on the path (the tiny fixture)

    assert main(["--engines", "hf", "--items", "4", "--batch-size", "2", "--max-new-tokens", "4",
                 "--cache-dir", str(tiny.profile.cache_dir)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["device"], result["items"], list(result["engines"])) == ("cpu", 4, ["hf"])
    hf = result["engines"]["hf"]
    assert hf["equal_to_hf"] == 1.0 and hf["items_per_s"] > 0 and 0.0 <= hf["accuracy"] <= 1.0
    assert hf["answer_tokens_per_s"] > 0


def test_gpu_script_records_where_the_estimate_reads(tiny, capsys, tmp_path):
    from gpu_eval_engines import main

    from medrl_lib.ops.estimate import load_throughput, throughput

    path = tmp_path / "throughput.json"
    args = ["--engines", "hf", "--items", "2", "--batch-size", "2", "--max-new-tokens", "4",
            "--cache-dir", str(tiny.profile.cache_dir), "--record"]
    with pytest.raises(SystemExit, match="--throughput-file"):  # a tiny model never writes the package's 2B figures
        main(args)
    assert main(args + ["--throughput-file", str(path)]) == 0
    entry = throughput(load_throughput(path), "cpu", "hf", "evaluation")
    assert entry["value"] > 0 and entry["source"].startswith("measured by benchmarks/gpu_eval_engines.py on ")
