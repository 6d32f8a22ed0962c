"""The papers' published numbers (Zhu et al. 2025 Table 1; Pan et al. 2025 Table 1), for labelled reference columns beside ours; never outputs.

>>> MEDVLM_R1_TABLE1["GRPO-2B"]["MRI"]
95.33
"""

from __future__ import annotations

#: Pan et al. 2025 (MedVLM-R1), Table 1: accuracy (%) trained on MRI, tested on MRI / CT / X-ray.
MEDVLM_R1_TABLE1: dict[str, dict[str, float]] = {
    "random guess": {"MRI": 25.00, "CT": 30.25, "X-ray": 26.00, "average": 27.08},
    "Qwen2-VL-2B": {"MRI": 61.67, "CT": 50.67, "X-ray": 53.00, "average": 55.11},
    "Qwen2-VL-7B": {"MRI": 72.33, "CT": 68.67, "X-ray": 66.63, "average": 69.21},
    "Qwen2-VL-72B": {"MRI": 68.67, "CT": 60.67, "X-ray": 72.33, "average": 67.22},
    "HuatuoGPT-Vision-7B": {"MRI": 71.00, "CT": 63.00, "X-ray": 73.66, "average": 69.22},
    "SFT-2B": {"MRI": 94.00, "CT": 54.33, "X-ray": 34.00, "average": 59.44},
    "GRPO-2B": {"MRI": 95.33, "CT": 70.33, "X-ray": 69.00, "average": 78.22},
}

#: Zhu et al. 2025, Table 1: accuracy / similarity / perplexity / thinking reward / thinking length.
ZHU_TABLE1: dict[str, dict[str, float | None]] = {
    "Qwen2-VL-2B-Instruct zero-shot": {"accuracy": 47.29},
    "LoRA": {"accuracy": 45.98},
    "full SFT": {"accuracy": 52.00},
    "DPO": {"accuracy": 46.97},
    "base + GRPO": {"accuracy": 51.56, "similarity": 0.49, "perplexity": 14.16, "thinking_reward": 9.27,
                    "thinking_length": 141.46},
    "instruct + GRPO": {"accuracy": 58.04, "similarity": 0.21, "perplexity": 13.28, "thinking_reward": 7.66,
                        "thinking_length": 66.41},
    "+SA": {"accuracy": 59.86, "similarity": 0.46, "perplexity": 36.54, "thinking_reward": 8.07,
            "thinking_length": 64.42},
    "+SA+ECR": {"accuracy": 50.17, "similarity": 0.65, "perplexity": 20.54, "thinking_reward": 9.42,
                "thinking_length": 338.14},
    "+SA+CWR": {"accuracy": 54.68, "similarity": 0.61, "perplexity": 18.45, "thinking_reward": 7.82,
                "thinking_length": 224.06},
    "Dr.GRPO": {"accuracy": 61.09, "similarity": 0.24, "perplexity": 11.10, "thinking_reward": 4.17,
                "thinking_length": 76.11},
    "LLaVA-1.5-7B": {"accuracy": 11.8, "similarity": 0.19},
    "Llama-3.2-11B-Vision-Instruct": {"accuracy": 22.92, "similarity": 0.33},
}
