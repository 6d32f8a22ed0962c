"""Today's start models by family: tiny stand-ins of Qwen2.5-VL and Qwen3-VL in their hubs' layouts load with their
family's classes read from the checkpoint, and one GRPO arm of each, trained and evaluated, runs through the
paper profile's branches (the rehearsal: 2 processes through accelerate + DeepSpeed ZeRO-2, the hub loading path).
Their vLLM runs are in tests/vllm/test_families.py."""

import json

import pytest

from medrl_lib.config import load_profile, resolve_path
from medrl_lib.experiments import study
from medrl_lib.models.family_standins import FAMILY_IDS, QWEN2_5_VL, QWEN3_VL
from medrl_lib.models import sources
from medrl_lib.models.loading import TINY_MARKER, eos_token_ids, load_model, vision_token_ids
from medrl_lib.ops import rehearsal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders():
    root = resolve_path(rehearsal.ROOT)
    out = {}
    for hub_id in FAMILY_IDS:
        out[hub_id] = root / "models" / hub_id.split("/", 1)[1]
        sources.ensure_part(out[hub_id], root)  # built once, as a profile naming it would
    return out


@pytest.mark.parametrize("hub_id, model_class, processor_class, patch, layout", [
    # Qwen2.5-VL: flat config, legacy checkpoint keys, patch 14
    (QWEN2_5_VL, "Qwen2_5_VLForConditionalGeneration", "ImageOnlyQwen2_5_VLProcessor", 14, "model.layers."),
    # Qwen3-VL: nested config, v5 checkpoint keys, patch 16, <think> a token of its own
    (QWEN3_VL, "Qwen3VLForConditionalGeneration", "ImageOnlyQwen3VLProcessor", 16, "model.language_model.layers."),
])
def test_each_family_loads_with_the_classes_its_checkpoint_names(folders, hub_id, model_class, processor_class, patch,
                                                                 layout):
    folder = folders[hub_id]
    assert not (folder / TINY_MARKER).exists()  # the hub branch, never the tiny one
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert all(k.startswith((layout.split("layers")[0], "visual.", "model.visual.")) for k in index["weight_map"])
    assert any(k.startswith(layout) for k in index["weight_map"])
    model, processor = load_model(folder, max_pixels=401408)
    assert type(model).__name__ == model_class and type(processor).__name__ == processor_class
    assert processor.image_processor.patch_size == patch and processor.image_processor.size["longest_edge"] == 401408
    tok = processor.tokenizer
    # vision tokens and stop ids from the checkpoint's own config, not from Qwen2-VL's numbers
    assert vision_token_ids(model) == sorted(tok.convert_tokens_to_ids(
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]))
    assert eos_token_ids(model, tok) == tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    think = tok("<think>x</think>", add_special_tokens=False)["input_ids"]
    assert (len(think) == 3) == (hub_id == QWEN3_VL)  # Qwen3's reasoning tags are single tokens


@pytest.mark.parametrize("hub_id", FAMILY_IDS)
def test_each_family_trains_an_arm_and_answers_through_the_paper_branches(folders, hub_id, tmp_path):
    overrides = {"results_dir": str(tmp_path / "results"), "panel.benchmarks": []}
    if hub_id == QWEN3_VL:  # the today profile's rehearsal twin (configs/rehearsal-today.yaml), as it is
        profile = "rehearsal-today"
        assert resolve_path(load_profile(profile).model.instruct) == folders[hub_id]
    else:
        profile, overrides = "rehearsal", {**overrides, "model.instruct": str(folders[hub_id])}
    run = study.run_arm(profile, "grpo-instruct", 0, overrides)
    steps = [e for e in run.log_history if "reward" in e]
    assert [e["step"] for e in steps] == [1, 2, 3]  # 2 processes x ZeRO-2, the paper's launch path
    assert all(0.0 <= e["rewards/format_reward/mean"] <= 1.0 for e in steps)
    assert any(e["rewards/format_reward/mean"] > 0 for e in steps)  # the tuned stand-in writes the tags
    assert run.metrics["eval/engine"] == "hf" and run.metrics["eval/accuracy/all/n"] == len(run.records) > 0
    assert run.metrics["eval/format/all"] > 0  # the evaluation parsed the family's completions
    saved = json.loads((run.path / "model" / "config.json").read_text())  # the trained model kept, of its family
    assert saved["model_type"] == json.loads((folders[hub_id] / "config.json").read_text())["model_type"]
