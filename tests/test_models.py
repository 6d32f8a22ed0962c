"""The tiny Qwen2-VL factory: deterministic build, identical logits after save/reload, folders built once."""

import numpy as np
import pytest
import torch
from PIL import Image

from medrl_lib.config import TinyModelConfig
from medrl_lib.models.loading import (TINY_MARKER, build_once, build_tiny_model, is_built, load_model,
                              make_processor, train_tokenizer)
from medrl_lib.rl.prompts import chat_messages
from medrl_lib.training.standins import TinyModelSpec, ensure_tiny_model

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

    def write(folder):
        model.save_pretrained(folder)
        proc.save_pretrained(folder)

    build_once(tmp_path / "m", write, {"kind": "test"}, marker=TINY_MARKER)
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


def test_build_once_builds_once_and_replaces_unfinished_or_stale_folders(tmp_path):
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights.txt").write_text(str(len(calls)))
        return {"train_ids": ["a", "b"]}

    path = tmp_path / "thing-abc"
    assert build_once(path, build, {"kind": "thing", "settings": {"n": (1, 2)}}, marker="done.json") == path
    assert is_built(path, {"kind": "thing", "settings": {"n": (1, 2)}}, "done.json")  # tuples compare as stored
    assert build_once(path, build, {"kind": "thing", "settings": {"n": (1, 2)}}, marker="done.json") == path
    assert len(calls) == 1 and (path / "weights.txt").read_text() == "1"  # reused, not rebuilt
    import json

    assert json.loads((path / "done.json").read_text())["train_ids"] == ["a", "b"]  # what the build returned
    # other settings in the marker: stale, rebuilt in place; an interrupted build (no marker): rebuilt too
    build_once(path, build, {"kind": "thing", "settings": {"n": 3}}, marker="done.json")
    (path / "done.json").unlink()
    build_once(path, build, {"kind": "thing", "settings": {"n": 3}}, marker="done.json")
    assert len(calls) == 3 and (path / "weights.txt").read_text() == "3"
    # no temporary folder left; the lock file beside the folder stays (medrl_lib.common.locks)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing-abc.lock", "thing-abc"]

    def fail(folder):
        (folder / "half.txt").write_text("")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "other", fail, {"kind": "x"}, marker="done.json")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["thing-abc"]  # nothing
    # taken for a finished folder
