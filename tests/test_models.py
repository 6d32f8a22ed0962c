"""The tiny Qwen2-VL factory: deterministic build, identical logits after save/reload."""

import numpy as np
import pytest
import torch
from PIL import Image

from medrl_lib.models import (TinyModelConfig, TinyModelSpec, build_tiny_model, ensure_tiny_model, load_model,
                              make_processor, save_model, train_tokenizer)
from medrl_lib.prompts import chat_messages

ARCH = TinyModelConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, vision_depth=1, vision_embed_dim=16,
                       vision_num_heads=2)
CORPUS = ["Where is the lesion? A. upper left B. lower right <think>a small lesion</think><answer>B</answer>"] * 20


def _batch(processor):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (56, 56, 3), dtype=np.uint8)) for _ in range(2)]
    texts = [processor.apply_chat_template(chat_messages("Where?", ["left", "right"]), add_generation_prompt=True,
                                           tokenize=False)] * 2
    return processor(text=texts, images=images, padding=True, return_tensors="pt")


def test_save_reload_gives_identical_logits(tmp_path):
    tok = train_tokenizer(CORPUS, ARCH.vocab_size)
    proc = make_processor(tok, 56)
    model = build_tiny_model(ARCH, tok)
    save_model(model, proc, tmp_path / "m")
    model2, proc2 = load_model(tmp_path / "m")
    with torch.no_grad():
        a = model(**_batch(proc)).logits
        b = model2(**_batch(proc2)).logits
    assert a.shape == b.shape and torch.equal(a, b)


def test_processor_keeps_image_tokens_and_left_pads(tmp_path):
    tok = train_tokenizer(CORPUS, ARCH.vocab_size)
    proc = make_processor(tok, 56)
    enc = _batch(proc)
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    # 56x56 with patch 14 and a 2x2 merge: 4 image tokens per image
    assert (enc["input_ids"] == image_pad).sum(dim=1).tolist() == [4, 4]
    assert tok.padding_side == "left"


def test_build_is_deterministic(tmp_path):
    spec = TinyModelSpec(arch=ARCH, corpus_items=30)
    a = ensure_tiny_model(spec, tmp_path / "a")
    b = ensure_tiny_model(spec, tmp_path / "b")
    assert a.name == b.name  # keyed by the spec's hash
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    # a second call finds the folder instead of rebuilding it
    mtime = (a / "model.safetensors").stat().st_mtime
    assert ensure_tiny_model(spec, tmp_path / "a") == a and (a / "model.safetensors").stat().st_mtime == mtime


def test_different_seed_different_weights(tmp_path):
    tok = train_tokenizer(CORPUS, ARCH.vocab_size)
    m1 = build_tiny_model(ARCH, tok)
    m2 = build_tiny_model(TinyModelConfig(**{**ARCH.__dict__, "seed": 1}), tok)
    p1, p2 = next(m1.parameters()), next(m2.parameters())
    assert not torch.equal(p1, p2)


def test_load_model_rejects_a_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(FileNotFoundError, match="weights.bin"):
        load_model(f)
