"""Parts at the paper's shapes for the GPU benchmarks, made without a download: a policy folder in the hub's layout and
PMC-VQA files in the published layout with figures above the pixel cap.

* ``policy_folder(root, "paper")``: Qwen2-VL-2B's published architecture (:data:`medrl_lib.ops.preflight.QWEN2_VL_2B`)
  with random bf16 weights, beside the tokenizer, chat template and processor files of the rehearsal's instruct
  stand-in (its special-token ids written into the config). A step's cost does not depend on the weights; the
  random policy rarely ends a completion, so completions run to the profile's limit, the paper's worst case.
* ``policy_folder(root, "rehearsal")``: the rehearsal's instruct stand-in itself (a CPU rehearsal of the benchmark).
* ``data_folder(root)``: :func:`medrl_lib.data.fixtures.write_pmc_vqa` with 1200 x 900 figures (resized to the
  401,408-pixel cap: 494 image tokens each).
"""

from __future__ import annotations

import shutil
from pathlib import Path

#: Figure size of the benchmark's PMC-VQA files: above the paper's pixel cap.
FIGURE_SIZE = (1200, 900)
SCALES = ("paper", "rehearsal")


def standin_folder() -> Path:
    """The rehearsal's instruct stand-in (built on first use)."""
    from medrl_lib.ops import rehearsal
    from medrl_lib.config import resolve_path

    parts = rehearsal.ensure_parts(resolve_path(rehearsal.ROOT))
    return parts["models"] / "Qwen2-VL-2B-Instruct"


def policy_folder(root: str | Path, scale: str) -> Path:
    """A policy folder of ``scale`` (:data:`SCALES`) under ``root``, made once."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    standin = standin_folder()
    if scale == "rehearsal":
        return standin
    folder = Path(root) / "qwen2-vl-2b-random"
    if (folder / "model.safetensors.index.json").exists() or (folder / "model.safetensors").exists():
        return folder
    import torch
    from transformers import AutoConfig, Qwen2VLForConditionalGeneration

    from medrl_lib.ops.preflight import QWEN2_VL_2B, qwen2_vl_2b_config

    own = AutoConfig.from_pretrained(standin)
    config = qwen2_vl_2b_config()
    for name in ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id",
                 "bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(own, name, None) is not None:
            setattr(config, name, getattr(own, name))
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(own.text_config, name, None)
        if value is not None:
            setattr(config.text_config, name, value)
    config.text_config.vocab_size = QWEN2_VL_2B["text"]["vocab_size"]
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).to(torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for f in standin.iterdir():
        if f.is_file() and not f.name.startswith(("model", "config.json", "medrl_")):
            shutil.copy(f, tmp / f.name)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def data_folder(root: str | Path, n_per_modality: int = 12) -> Path:
    """PMC-VQA files in the published layout under ``root``, figures of :data:`FIGURE_SIZE`, made once."""
    from medrl_lib.data.fixtures import write_pmc_vqa

    folder = Path(root) / "pmc-vqa-large-figures"
    if not (folder / "images_2.zip").exists():
        write_pmc_vqa(folder, n_per_modality=n_per_modality, figure_size=FIGURE_SIZE)
    return folder


def decode_bytes(config) -> int:
    """Bytes of weights one decoding step reads: the language model's (its layers, final norm and output head;
    an embedding lookup reads one row, and the vision tower runs once per prompt, not per token), in bf16."""
    t = config.text_config
    head = t.hidden_size // t.num_attention_heads
    attention = t.hidden_size * head * (t.num_attention_heads + 2 * t.num_key_value_heads) \
        + t.num_attention_heads * head * t.hidden_size
    mlp = 3 * t.hidden_size * t.intermediate_size
    layers = t.num_hidden_layers * (attention + mlp + 2 * t.hidden_size)
    return 2 * (layers + t.hidden_size + t.vocab_size * t.hidden_size)
