"""Tiny stand-ins of today's Qwen-VL start models in their hubs' layouts: Qwen2.5-VL and Qwen3-VL.

Like :mod:`medrl_lib.models.hub_standins` (whose tokenizer, corpus and instruct tuning they share), each is a real model of
the family's class, small, written with the files and formats its hub repository ships, so that loading,
prompting, generation, training and vLLM take the branches the hub model takes:

- ``Qwen/Qwen2.5-VL-3B-Instruct``: ``Qwen2_5_VLForConditionalGeneration``; the flat pre-v5 ``config.json``
  (``model_type`` ``qwen2_5_vl``, a vision tower with window attention, ``fullatt_block_indexes``,
  ``out_hidden_size``), checkpoint keys ``model.*``/``visual.*``; ``preprocessor_config.json`` naming
  ``Qwen2_5_VLProcessor`` (patch 14, merge 2, Qwen2-VL's pixel limits); Qwen2-VL's chat template.
- ``Qwen/Qwen3-VL-2B-Instruct``: ``Qwen3VLForConditionalGeneration``; the nested v5 ``config.json``
  (``text_config`` with ``head_dim`` and interleaved M-RoPE, ``vision_config`` with patch 16 and DeepStack
  indexes), checkpoint keys ``model.language_model.*``/``model.visual.*``; ``preprocessor_config.json`` naming
  ``Qwen3VLProcessor`` with ``size`` (shortest and longest edge: 65,536 and 16,777,216 px), patch 16, mean and
  std 0.5; ``<think>`` and ``</think>`` as added (not special) tokens; a chat template without a default system
  turn; the hub's sampling defaults (top-k 20, top-p 0.8, temperature 0.7).

Neither family publishes a base model at these sizes: an arm that starts from a base model has no start here.
Each stand-in is tuned briefly as an instruct model (the reasoning prompt answered in the tags). Built once under
``root/<name after the slash>`` and reused while its marker records the same hub id, seed and :data:`VERSION`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from medrl_lib.models.hub_files import save_sharded, write_json, write_vocab_merges
from medrl_lib.models.hub_standins import (QWEN2_VL_PREPROCESSOR, build_standin, is_complete, legacy_qwen_keys, qwen_tokenizer,
                           seeded, standin_folder, tune_instruct)

QWEN2_5_VL = "Qwen/Qwen2.5-VL-3B-Instruct"
QWEN3_VL = "Qwen/Qwen3-VL-2B-Instruct"
#: The hub ids :func:`build_family_standins` makes stand-ins for (instruct models: neither family has a base here).
FAMILY_IDS = (QWEN2_5_VL, QWEN3_VL)
#: Bump when a family stand-in changes, so that cached folders are rebuilt.
VERSION = 1

_TUNE_STEPS = 60  # the brief instruct tuning of each (the branches matter here, not the answers' quality)
_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)

#: Qwen3-VL's chat template, shortened to what the study sends (text and image parts, no tools, no default system
#: turn).
QWEN3_VL_CHAT_TEMPLATE = (
    "{%- for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{%- if message['content'] is string %}{{ message['content'] }}"
    "{%- else %}{%- for content in message['content'] %}"
    "{%- if content['type'] == 'image' or 'image' in content %}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{ content['text'] }}{%- endif %}{%- endfor %}{%- endif %}<|im_end|>\n"
    "{%- endfor %}{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def _ids(tokenizer) -> dict[str, int]:
    names = ("<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
             "<|video_pad|>")
    return {t: tokenizer.convert_tokens_to_ids(t) for t in names}


def _vocab_size(tokenizer) -> int:
    return -(-len(tokenizer) // 128) * 128  # the hub pads the embedding past the tokenizer


def qwen2_5_vl_config(tokenizer) -> dict:
    """Qwen2.5-VL-Instruct's ``config.json`` (flat, as the hub ships it) at the stand-in's size."""
    ids, a = _ids(tokenizer), _TEXT
    half = a["hidden_size"] // a["num_attention_heads"] // 2
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"], "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"], "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"], "hidden_act": "silu", "initializer_range": 0.02,
        "max_position_embeddings": 128000, "max_window_layers": a["num_hidden_layers"], "model_type": "qwen2_5_vl",
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
        "torch_dtype": "bfloat16", "transformers_version": "4.41.2", "use_cache": True, "use_sliding_window": False,
        **a,
        "vision_config": {"depth": 2, "hidden_act": "silu", "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                          "in_chans": 3, "out_hidden_size": a["hidden_size"], "patch_size": 14,
                          "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
                          "fullatt_block_indexes": [1], "tokens_per_second": 2, "temporal_patch_size": 2},
        "rope_scaling": {"type": "mrope", "mrope_section": [half // 4, (half - half // 4) // 2,
                                                            half - half // 4 - (half - half // 4) // 2]},
        "vocab_size": _vocab_size(tokenizer),
    }


def qwen3_vl_config(tokenizer) -> dict:
    """Qwen3-VL-Instruct's ``config.json`` (nested, as the hub ships it) at the stand-in's size."""
    ids, a = _ids(tokenizer), _TEXT
    head_dim = 32
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"], "image_token_id": ids["<|image_pad|>"],
        "model_type": "qwen3_vl",
        "text_config": {"attention_bias": False, "attention_dropout": 0.0, "bos_token_id": ids["<|endoftext|>"],
                        "dtype": "bfloat16", "eos_token_id": ids["<|im_end|>"], "head_dim": head_dim,
                        "hidden_act": "silu", "initializer_range": 0.02, "max_position_embeddings": 262144,
                        "model_type": "qwen3_vl_text", "rms_norm_eps": 1e-06,
                        "rope_scaling": {"mrope_interleaved": True, "mrope_section": [6, 5, 5], "rope_type": "default"},
                        "rope_theta": 5000000, "tie_word_embeddings": True, "use_cache": True,
                        "vocab_size": _vocab_size(tokenizer), **a},
        "tie_word_embeddings": True, "transformers_version": "4.57.0.dev0", "video_token_id": ids["<|video_pad|>"],
        "vision_config": {"deepstack_visual_indexes": [0], "depth": 2, "hidden_act": "gelu_pytorch_tanh",
                          "hidden_size": 32, "in_channels": 3, "initializer_range": 0.02, "intermediate_size": 64,
                          "model_type": "qwen3_vl", "num_heads": 2, "num_position_embeddings": 64,
                          "out_hidden_size": a["hidden_size"], "patch_size": 16, "spatial_merge_size": 2,
                          "temporal_patch_size": 2},
        "vision_end_token_id": ids["<|vision_end|>"], "vision_start_token_id": ids["<|vision_start|>"],
    }


QWEN3_VL_PREPROCESSOR = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16, "temporal_patch_size": 2,
    "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}
"""Qwen3-VL's ``preprocessor_config.json`` as its hub repositories ship it."""

#: hub id -> (config.json builder, preprocessor_config.json, chat template name, checkpoint key layout, generation)
_FAMILIES = {
    QWEN2_5_VL: (qwen2_5_vl_config, {**QWEN2_VL_PREPROCESSOR, "processor_class": "Qwen2_5_VLProcessor"}, "qwen2",
                 "legacy", {"do_sample": True, "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001,
                            "top_k": 1}),
    QWEN3_VL: (qwen3_vl_config, QWEN3_VL_PREPROCESSOR, "qwen3", "v5",
               {"do_sample": True, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.0, "temperature": 0.7}),
}


def build_family_standins(root: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Build (once) the stand-ins of :data:`FAMILY_IDS` under ``root``; return ``{hub id: folder}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = {hub_id: standin_folder(root, hub_id) for hub_id in FAMILY_IDS}
    with seeded(seed):
        for hub_id, folder in out.items():
            if not is_complete(folder, hub_id, seed):
                build_standin(folder, hub_id, seed, lambda tmp, h=hub_id: _write_family(tmp, h, seed))
    return out


def _write_family(folder: Path, hub_id: str, seed: int) -> None:
    """One family's instruct repository: config, generation config, sharded bf16 weights, tokenizer files,
    preprocessor config and chat template; the model built from that config, tuned briefly."""
    import transformers
    from transformers import AutoConfig, AutoModelForImageTextToText

    from medrl_lib.models.loading import QWEN2_VL_CHAT_TEMPLATE, load_vl_processor

    make_config, preprocessor, template_name, layout, sampling = _FAMILIES[hub_id]
    tokenizer, vocab, merges = qwen_tokenizer(seed)
    if template_name == "qwen3":  # Qwen3's reasoning tags are tokens of their own (added, not special)
        tokenizer.add_tokens(["<think>", "</think>"], special_tokens=False)
    template = QWEN3_VL_CHAT_TEMPLATE if template_name == "qwen3" else QWEN2_VL_CHAT_TEMPLATE
    tokenizer.chat_template = template
    config = make_config(tokenizer)
    write_json(folder / "config.json", config)
    write_json(folder / "preprocessor_config.json", preprocessor)
    tokenizer.save_pretrained(str(folder))
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    write_json(folder / "chat_template.json", {"chat_template": template})
    write_vocab_merges(folder, vocab, merges, "#version: 0.2")
    ids = _ids(tokenizer)
    write_json(folder / "generation_config.json", {"bos_token_id": ids["<|endoftext|>"],
                                                   "pad_token_id": ids["<|endoftext|>"],
                                                   "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
                                                   **sampling, "transformers_version": config["transformers_version"]})
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(str(folder))).float()
    processor = load_vl_processor(folder)
    losses = tune_instruct(model, processor.tokenizer, seed, processor=processor, steps=_TUNE_STEPS)
    state = model.state_dict()
    state = legacy_qwen_keys(state, tied=True) if layout == "legacy" else \
        {k: v for k, v in state.items() if k != "lm_head.weight"}
    save_sharded(state, folder, 2, torch.bfloat16)
    write_json(folder / "medrl_standin_training.json", {"steps": _TUNE_STEPS, "first_loss": losses[0],
                                                        "final_loss": losses[-1],
                                                        "transformers": transformers.__version__})
