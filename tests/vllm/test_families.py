"""Today's start models on the real vLLM engine: the rehearsal's Qwen2.5-VL and Qwen3-VL stand-ins (hub layouts,
:mod:`medrl_lib.models.family_standins`) get the prompt the policy trains on, answer the test items as ``generate`` does,
and sample GRPO's rollouts in the colocated engine."""

import numpy as np
import pytest
from PIL import Image
from vllm import SamplingParams

from medrl_lib.config import load_profile, resolve_path
from medrl_lib.models.family_standins import FAMILY_IDS
from medrl_lib.models import sources
from medrl_lib.ops import rehearsal
from medrl_lib.rl import vllm_inputs
from medrl_lib.training import train


def _folder(hub_id: str):
    root = resolve_path(rehearsal.ROOT)
    folder = root / "models" / hub_id.split("/", 1)[1]
    sources.ensure_part(folder, root)
    return folder


def _profile(hub_id: str, **extra):
    return load_profile("rehearsal", {"model.instruct": str(_folder(hub_id)), "num_processes": 1,
                                      "panel.benchmarks": [], **extra})


@pytest.mark.parametrize("hub_id", FAMILY_IDS)
def test_greedy_evaluation_agrees_and_grpo_samples_with_vllm(parts, hub_id, tmp_path):
    """``answer_items`` with vLLM against ``generate`` (at least 2 in 3 completions identical), then two GRPO steps
    with rollouts from the colocated engine, which then gets the prompt the policy trains on."""
    from medrl_lib.training import generation
    from medrl_lib.data.splits import make_splits

    records = {}
    for engine in ("hf", "vllm"):
        p = _profile(hub_id, **{"eval.engine": engine})
        model, processor = train.load_policy(p, str(_folder(hub_id)))
        answers = generation.answer_items(model, processor, p, make_splits(p)[1], out_dir=tmp_path / engine)
        assert answers.engine == engine
        records[engine] = answers.records
    pairs = list(zip(records["hf"], records["vllm"]))
    assert sum(a.completion == b.completion for a, b in pairs) >= 2 / 3 * len(pairs)
    p = _profile(hub_id, **{"grpo.rollouts": "vllm", "grpo.max_steps": 2, "grpo.save_steps": 100})
    res = train.run_grpo(p, str(_folder(hub_id)), make_splits(p)[0], str(tmp_path / "grpo"))
    assert res["trainer"].use_vllm and len([e for e in res["log_history"] if "reward" in e]) == 2
    _vllm_counts_the_image_tokens_the_policy_counts(res["trainer"].vllm_generation.llm, res["processor"])


def _vllm_counts_the_image_tokens_the_policy_counts(llm, processor):
    """The colocated engine, given what the trainer gives it (one placeholder, the image at the policy's size),
    expands the image once, to the policy's own count of image tokens (patch 14 or 16, the family's limits)."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(200, 300, 3), dtype=np.uint8))
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text",
                                                                                           "text": "What is shown?"}]}],
                                         add_generation_prompt=True, tokenize=False)
    ours = list(processor(text=[text], images=[image])["input_ids"][0])
    sent = {"prompt_token_ids": vllm_inputs.collapse_image_tokens(ours, processor.image_token_id),
            "multi_modal_data": {"image": vllm_inputs.fit_image(image, processor.image_processor)}}
    out = llm.generate([sent], SamplingParams(max_tokens=2), use_tqdm=False)[0]
    assert list(out.prompt_token_ids) == ours and ours.count(processor.image_token_id) > 1
