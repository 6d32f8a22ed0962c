"""The GPU benchmark script runs end to end on CPU with its scaled-down config (the GPU run needs a GPU)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_grpo_step_runs_scaled_down(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_grpo_step.py"), "--scale", "tiny",
                           "--steps", "1", "--generations", "2", "--new-tokens", "4", "--image-side", "56",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res["runs"]) == {"no checkpointing", "checkpointing"}
    for row in res["runs"].values():
        assert row["seconds_per_step"] > 0 and row["generated_tokens_per_s"] > 0 and row["parameters"] > 1000


def test_full_config_is_qwen2_vl_2b():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_grpo_step import qwen2vl_2b_config

    c = qwen2vl_2b_config("full")
    t, v = c.text_config, c.vision_config
    # Qwen2-VL-2B as published (medrl_lib.preflight.QWEN2_VL_2B)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads) == (1536, 28, 12, 2)
    assert (t.intermediate_size, t.vocab_size) == (8960, 151936)
    assert (v.depth, v.embed_dim, v.num_heads, v.patch_size, v.spatial_merge_size) == (32, 1280, 16, 14, 2)
