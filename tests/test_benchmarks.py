"""The GPU benchmarks run the real training path: on CPU at the rehearsal's scale (the paper's shapes need a GPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_gpu_grpo_step_times_the_launch_path_at_rehearsal_scale_and_records_its_figures(tmp_path):
    # accelerate + DeepSpeed ZeRO-2 over 2 gloo processes, figures above the pixel cap, peak memory of every rank
    from medrl_lib.ops import estimate as E
    from medrl_lib.common.files import read_json, write_json

    out, table = tmp_path / "r.json", tmp_path / "throughput.json"
    write_json(table, E.load_throughput())
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_grpo_step.py"), "--scale", "rehearsal",
                           "--processes", "2", "--steps", "2", "--work-dir", str(tmp_path), "--json", str(out),
                           "--record", "--throughput-file", str(table)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cpu = read_json(table)["gpus"]["cpu"]  # recorded where medrl estimate reads its figures
    for engine, figure in [("hf", "generation"), ("train", "grpo")]:
        entry = cpu[engine][figure]
        assert entry["value"] > 0 and entry["source"].startswith("measured by benchmarks/gpu_grpo_step.py on ")
        assert entry["step_seconds"] > 0 and entry["device"] == "cpu"
    res = json.loads(out.read_text())
    assert (res["steps"], res["processes"], res["zero_stage"], res["backend"]) == (2, 2, 2, "gloo")
    assert len(res["peak_memory_gib_per_rank"]) == 2 and all(r["allocated"] > 0 for r in res["peak_memory_gib_per_rank"])
    assert 0 < res["rollout_seconds_per_step"] < res["seconds_per_step"]
    assert res["rollout_completion_tokens_per_s"] > 0 and res["update_tokens_per_s"] > 0
    assert res["memory_plan_gib"]["peak"] == pytest.approx(sum(v for k, v in res["memory_plan_gib"].items()
                                                               if k != "peak"), abs=0.05)


def test_paper_policy_is_qwen2_vl_2b_and_decoding_reads_the_language_model_only():
    from paper_shapes import decode_bytes

    from medrl_lib.ops.preflight import count_parameters, qwen2_vl_2b_config

    c = qwen2_vl_2b_config()
    t, v = c.text_config, c.vision_config
    # Qwen2-VL-2B as published (medrl_lib.ops.preflight.QWEN2_VL_2B)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) == (1536, 28, 12, 2)
    assert (t.intermediate_size, t.vocab_size) == (8960, 151936)
    assert (v.depth, v.embed_dim, v.num_heads, v.patch_size, v.spatial_merge_size) == (32, 1280, 16, 14, 2)
    # the bound counts the language model's weights (the tied head once), not the vision tower's: the model's
    # parameters less the vision tower's, counted on the meta device, up to the attention biases it leaves out
    import torch
    from transformers import Qwen2VLForConditionalGeneration

    with torch.device("meta"):
        vision = sum(p.numel() for p in Qwen2VLForConditionalGeneration(c).model.visual.parameters())
    language = count_parameters(c) - vision
    assert language * (1 - 1e-3) < decode_bytes(c) / 2 <= language
