"""Hub stand-ins (medrl_lib.models.hub_standins) and the hub branch of models.load_model: the paper profile's loading,
prompting, generation and metric code run on small local models saved in the hubs' own layouts."""

import json
import math
import warnings

import pytest
import torch

from medrl_lib.config import load_profile
from medrl_lib.models.hub_standins import (BASE, BIOGPT, CROSS_ENCODER, HUB_IDS, INSTRUCT, MISTRAL, QWEN2_VL_SPECIAL_TOKENS,
                                    STANDIN_FILE, build_hub_standins, is_complete)
from medrl_lib.models.loading import (QWEN2_VL_CHAT_TEMPLATE, TINY_MARKER, check_pixel_limit, eos_token_ids, load_model,
                              processor_class)
from medrl_lib.rl.prompts import chat_messages

MAX_PIXELS = load_profile("paper").model.max_pixels


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    return build_hub_standins(tmp_path_factory.mktemp("standins"), seed=0)


@pytest.fixture(scope="module")
def instruct(standins):
    return load_model(standins[INSTRUCT], max_pixels=MAX_PIXELS)


@pytest.fixture(scope="module")
def base(standins):
    return load_model(standins[BASE], max_pixels=MAX_PIXELS, chat_template_from=standins[INSTRUCT])


@pytest.fixture(scope="module")
def items():
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, generate

    return generate(SyntheticConfig(n_items=20, modalities=MODALITIES, seed=4321, image_size=56, id_prefix="standin-test"))


def _ids(tokenizer, *tokens):
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


# ---------------------------------------------------------------------------------------------
# the build: folders, layout, caching
# ---------------------------------------------------------------------------------------------


def test_folders_layout_and_no_tiny_marker(standins):
    assert list(standins) == list(HUB_IDS)
    for hub_id, path in standins.items():
        assert path.name == hub_id.split("/", 1)[1] and is_complete(path, hub_id, 0)
        assert not (path / TINY_MARKER).exists()  # they must go down the hub branch, never the tiny one
    expected = {
        # the files each hub repository ships (weights and tokenizer files in its own formats)
        INSTRUCT: {"config.json", "generation_config.json", "model.safetensors.index.json",
                   "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "tokenizer.json",
                   "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json", "chat_template.json"},
        BASE: {"config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
               "tokenizer_config.json", "vocab.json", "merges.txt", "preprocessor_config.json"},
        BIOGPT: {"config.json", "pytorch_model.bin", "vocab.json", "merges.txt"},
        CROSS_ENCODER: {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer.json",
                        "tokenizer_config.json", "special_tokens_map.json"},
        MISTRAL: {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json", "special_tokens_map.json"},
    }
    for hub_id, files in expected.items():
        assert files <= {p.name for p in standins[hub_id].iterdir()}, hub_id
    assert not (standins[BASE] / "chat_template.json").exists()  # the base ships no chat template at all
    assert "chat_template" not in json.loads((standins[BASE] / "tokenizer_config.json").read_text())
    # Qwen2-VL's config.json in the hub's pre-v5 layout, and its preprocessor config as shipped
    config = json.loads((standins[INSTRUCT] / "config.json").read_text())
    assert config["rope_scaling"]["type"] == "mrope" and "text_config" not in config
    assert config["torch_dtype"] == "bfloat16"
    pre = json.loads((standins[INSTRUCT] / "preprocessor_config.json").read_text())
    assert (pre["image_processor_type"], pre["min_pixels"], pre["max_pixels"]) == ("Qwen2VLImageProcessor", 3136, 12845056)


def test_build_is_cached_and_stale_folders_rebuilt(standins):
    root = standins[INSTRUCT].parent
    stamps = {h: p.joinpath(STANDIN_FILE).stat().st_mtime_ns for h, p in standins.items()}
    assert build_hub_standins(root, seed=0) == standins  # nothing rebuilt
    assert {h: p.joinpath(STANDIN_FILE).stat().st_mtime_ns for h, p in standins.items()} == stamps
    # a folder stamped by another seed (or an older build version) is stale: rebuilt, the others kept
    folder = standins[BIOGPT]
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    stamp = folder / STANDIN_FILE
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "seed": 99}))
    assert not is_complete(folder, BIOGPT, 0)
    build_hub_standins(root, seed=0)
    assert is_complete(folder, BIOGPT, 0)
    # ... identically: the build is deterministic (its BPE merges too, whose ties break by pair, not hash order)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert standins[INSTRUCT].joinpath(STANDIN_FILE).stat().st_mtime_ns == stamps[INSTRUCT]
    assert not [p.name for p in root.iterdir() if ".tmp" in p.name]  # no temp folder left behind


def test_qwen_tokenizer_files_agree(standins):
    from transformers import AutoTokenizer, Qwen2Tokenizer

    folder = standins[INSTRUCT]
    loaded = AutoTokenizer.from_pretrained(str(folder))  # tokenizer.json + the hub-style tokenizer_config.json
    from_files = Qwen2Tokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    plain = "user\nWhere is the lesion? <think>a small lesion, ünïcode 123</think><answer>B</answer>"
    text = f"<|im_start|>{plain}<|im_end|>"
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    assert loaded(plain)["input_ids"] == from_files(plain)["input_ids"]  # vocab.json/merges.txt = tokenizer.json
    assert loaded(text)["input_ids"] == _ids(loaded, "<|im_start|>") + loaded(plain)["input_ids"] + _ids(
        loaded, "<|im_end|>")  # special tokens are never split
    n = len(json.loads((folder / "vocab.json").read_text()))
    # the special tokens follow the regular vocabulary in the hub's order, identical for base and instruct
    assert _ids(loaded, *QWEN2_VL_SPECIAL_TOKENS) == list(range(n, n + len(QWEN2_VL_SPECIAL_TOKENS)))
    base = AutoTokenizer.from_pretrained(str(standins[BASE]))
    assert base.get_vocab() == loaded.get_vocab() and base(text)["input_ids"] == loaded(text)["input_ids"]
    assert (loaded.eos_token, base.eos_token, loaded.pad_token, base.pad_token) == (
        "<|im_end|>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>")


# ---------------------------------------------------------------------------------------------
# Qwen2-VL through load_model's hub branch
# ---------------------------------------------------------------------------------------------


def test_instruct_loads_through_the_hub_branch(standins, instruct):
    from safetensors import safe_open
    from transformers import Qwen2VLForConditionalGeneration

    model, processor = instruct
    assert type(model) is Qwen2VLForConditionalGeneration and model.dtype == torch.float32
    assert isinstance(processor, processor_class()) and getattr(processor, "video_processor", None) is None
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"  # no torchvision needed
    assert processor.image_processor.size["longest_edge"] == MAX_PIXELS  # max_pixels applied
    assert processor.image_processor.size["shortest_edge"] == 3136  # the rest from preprocessor_config.json
    assert model.config.text_config.rope_parameters["mrope_section"] == [4, 6, 6]  # read from the legacy config
    assert model.config.text_config.vocab_size > len(processor.tokenizer)  # padded embedding, as the hub's
    # the legacy checkpoint keys (model.layers.*, visual.*) were mapped, not left randomly initialised
    index = json.loads((standins[INSTRUCT] / "model.safetensors.index.json").read_text())["weight_map"]
    with safe_open(str(standins[INSTRUCT] / index["model.embed_tokens.weight"]), "pt") as f:
        saved = f.get_tensor("model.embed_tokens.weight")
    assert torch.equal(model.model.language_model.embed_tokens.weight, saved.float())
    assert processor.chat_template == processor.tokenizer.chat_template == QWEN2_VL_CHAT_TEMPLATE
    assert not processor.borrowed_chat_template


@pytest.mark.parametrize("min_pixels, limit, asked, error", [
    (3136, 401408, 401408, None),  # what was asked is what is kept
    (3136, 12845056, 401408, "pixel limit is 12845056"),  # the file's limit where max_pixels was asked: refused
    (3136, 401408, None, None),  # nothing asked: nothing checked
    (3136, 401408, 3000, "pixel limit"),  # another limit
    (3136, 1000, 1000, "below the image processor's min_pixels"),  # a limit under the minimum
])
def test_check_pixel_limit(min_pixels, limit, asked, error):
    from transformers import Qwen2VLImageProcessorPil

    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=limit)
    if error is None:
        check_pixel_limit(image_processor, asked)
    else:
        with pytest.raises(ValueError, match=error):
            check_pixel_limit(image_processor, asked)


def test_load_model_refuses_a_pixel_limit_it_did_not_get(standins, monkeypatch):
    from transformers import Qwen2VLImageProcessorPil

    original = Qwen2VLImageProcessorPil.from_pretrained.__func__

    def ignores_max_pixels(cls, path, **kwargs):  # a loader that drops the max_pixels override
        kwargs.pop("max_pixels", None)
        return original(cls, path, **kwargs)

    monkeypatch.setattr(Qwen2VLImageProcessorPil, "from_pretrained", classmethod(ignores_max_pixels))
    with pytest.raises(ValueError, match=f"not the max_pixels={MAX_PIXELS}"):
        load_model(standins[INSTRUCT], max_pixels=MAX_PIXELS)


def test_other_vlms_keep_auto_processor(standins, monkeypatch):
    import transformers

    import medrl_lib.models.loading as models

    calls = []
    monkeypatch.setattr(models, "_model_type", lambda path: "llava")  # a model type outside the Qwen-VL families
    monkeypatch.setattr(transformers.ImageProcessingMixin, "get_image_processor_dict",
                        lambda path, **kw: ({"processor_class": "LlavaProcessor"}, {}))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained",
                        lambda path, **kw: calls.append(kw) or "auto-processor")
    _, processor = load_model(standins[INSTRUCT], max_pixels=MAX_PIXELS)
    assert processor == "auto-processor" and calls == [{"max_pixels": MAX_PIXELS}]


def _render(processor, question="Where is the lesion?", options=("left", "right")):
    return processor.apply_chat_template(chat_messages(question, list(options)), add_generation_prompt=True,
                                         tokenize=False)


def test_base_gets_the_instruct_chat_template(standins, instruct, base):
    model, processor = base
    _, instruct_processor = instruct
    # chat_template_from: the instruct model's template, on the processor and on its tokenizer
    assert processor.borrowed_chat_template
    assert processor.chat_template == processor.tokenizer.chat_template == instruct_processor.chat_template
    rendered = _render(processor)
    assert rendered == _render(instruct_processor)  # prompted exactly as the instruct model
    assert rendered.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert processor.tokenizer.apply_chat_template(chat_messages("Q?", ["a", "b"]), tokenize=False,
                                                   add_generation_prompt=True) == _render(processor, "Q?", "ab")
    # the template's end of turn now ends generation too; the tokenizer keeps the base's EOS
    eot, im_end = _ids(processor.tokenizer, "<|endoftext|>", "<|im_end|>")
    assert processor.tokenizer.eos_token_id == eot and model.generation_config.eos_token_id == [eot, im_end]


def test_base_without_chat_template_from_warns_and_falls_back(standins, instruct):
    # documented fallback: Qwen2-VL-Instruct's template (models.QWEN2_VL_CHAT_TEMPLATE), with a warning
    with pytest.warns(UserWarning, match="ships no chat template"):
        model, processor = load_model(standins[BASE], max_pixels=MAX_PIXELS)
    assert processor.chat_template == processor.tokenizer.chat_template == QWEN2_VL_CHAT_TEMPLATE
    assert _render(processor) == _render(instruct[1])
    # a chat_template_from that has no template either is an error, not a silent fallback
    with pytest.raises(ValueError, match="ships no chat template either"):
        load_model(standins[BASE], chat_template_from=standins[BASE])


@pytest.mark.parametrize("which", [INSTRUCT, BASE])
def test_saved_after_training_reloads_through_the_same_branch(standins, instruct, base, items, which, tmp_path):
    # what GRPO's trainer.save_model / launch.py write: model.save_pretrained + processor.save_pretrained
    model, processor = instruct if which == INSTRUCT else base
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert not (tmp_path / TINY_MARKER).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the saved base carries its template: no fallback warning
        model2, processor2 = load_model(tmp_path, max_pixels=MAX_PIXELS)
    assert isinstance(processor2, processor_class()) and not processor2.borrowed_chat_template
    assert processor2.image_processor.size["longest_edge"] == MAX_PIXELS
    assert processor2.chat_template == processor.chat_template and _render(processor2) == _render(processor)
    assert eos_token_ids(model2, processor2.tokenizer) == eos_token_ids(model, processor.tokenizer)
    batch = lambda p: p(text=[_render(p)], images=[items[0]["image"]], return_tensors="pt")  # noqa: E731
    with torch.no_grad():
        assert torch.equal(model(**batch(processor)).logits, model2(**batch(processor2)).logits)


# ---------------------------------------------------------------------------------------------
# generation: every EOS id, and the instruct stand-in's format
# ---------------------------------------------------------------------------------------------


def test_generate_records_stops_on_every_eos_id(standins, instruct, items, monkeypatch):
    from medrl_lib.training.evaluate import generate_records

    model, processor = load_model(standins[BASE], max_pixels=MAX_PIXELS, chat_template_from=standins[INSTRUCT])
    tokenizer = processor.tokenizer
    eot, im_end = _ids(tokenizer, "<|endoftext|>", "<|im_end|>")
    model.load_state_dict(instruct[0].state_dict())  # the base architecture, writing as the instruct does
    seen = []
    generate = model.generate

    def spy(**kwargs):
        out = generate(**kwargs)
        seen.append((kwargs, out[:, kwargs["input_ids"].shape[1]:]))
        return out

    monkeypatch.setattr(model, "generate", spy)
    records = generate_records(model, processor, items.select(range(4)), batch_size=4, max_new_tokens=96)
    kwargs, new = seen[0]
    assert tokenizer.eos_token_id == eot and sorted(kwargs["eos_token_id"]) == sorted([eot, im_end])  # both ids
    # each answer ends at <|im_end|> (the generation config's EOS that is not the tokenizer's): only padding after
    for row, record in zip(new.tolist(), records):
        assert im_end in row, record.completion
        assert set(row[row.index(im_end) + 1:]) <= {eot}
    assert new.shape[1] < 96
    # the tokenizer's EOS alone (the old kwargs) would not have stopped there
    enc = processor(text=[records[0].prompt], images=[items[0]["image"]], return_tensors="pt")
    alone = generate(**enc, max_new_tokens=96, do_sample=False, eos_token_id=eot, pad_token_id=eot)
    assert alone.shape[1] - enc["input_ids"].shape[1] == 96


def test_instruct_standin_writes_the_reasoning_format(instruct, items):
    from medrl_lib.training.evaluate import generate_records
    from medrl_lib.rl.rewards import format_reward

    model, processor = instruct
    records = generate_records(model, processor, items, batch_size=10, max_new_tokens=96)
    rate = sum(format_reward([r.completion for r in records])) / len(records)
    assert rate > 0, [r.completion for r in records[:3]]  # the rehearsal reaches the metric models
    assert [r.well_formed for r in records] == [bool(x) for x in format_reward([r.completion for r in records])]


# ---------------------------------------------------------------------------------------------
# the metric and judge models
# ---------------------------------------------------------------------------------------------


def test_biogpt_perplexity_and_judge(standins):
    pytest.importorskip("sacremoses")  # BioGptTokenizer's dependency, pinned in pyproject.toml
    from transformers import AutoTokenizer

    from medrl_lib.rl.judges import LLMJudge
    from medrl_lib.scoring.metrics import Perplexity

    tokenizer = AutoTokenizer.from_pretrained(str(standins[BIOGPT]))
    assert type(tokenizer).__name__ == "BioGptTokenizer"  # the slow Moses + fastBPE tokenizer, as on the hub
    assert tokenizer.unk_token_id not in tokenizer("a b, MRI of the upper-left lobe")["input_ids"]
    texts = ["A small lesion in the upper left.", "MRI image showing two hyperintense lesions.", None]
    ppl = Perplexity(str(standins[BIOGPT]), batch_size=2)(texts)
    assert all(math.isfinite(p) and p > 1 for p in ppl[:2]) and math.isnan(ppl[2])
    verdicts = LLMJudge(str(standins[BIOGPT]), batch_size=2)(["Where is the lesion?"] * 3,
                                                              ["A small lesion in the upper left.", "No idea.", ""])
    assert len(verdicts) == 3 and all(type(v) is bool for v in verdicts)


def test_cross_encoder_similarity(standins):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from medrl_lib.scoring.metrics import CrossEncoderSimilarity

    assert type(AutoTokenizer.from_pretrained(str(standins[CROSS_ENCODER]))).__name__ == "RobertaTokenizer"
    model = AutoModelForSequenceClassification.from_pretrained(str(standins[CROSS_ENCODER]))
    assert type(model).__name__ == "RobertaForSequenceClassification" and model.config.num_labels == 1
    scores = CrossEncoderSimilarity(str(standins[CROSS_ENCODER]))(["a small lesion", "two lesions"],
                                                                  ["small lesion", "an MRI image"])
    assert len(scores) == 2 and all(type(s) is float and 0.0 <= s <= 1.0 for s in scores)


def test_mistral_thinking_scorer(standins):
    from transformers import AutoTokenizer

    from medrl_lib.rl.thinking import LLMThinkingScorer

    tokenizer = AutoTokenizer.from_pretrained(str(standins[MISTRAL]))
    # transformers v5 ignores the hub's tokenizer_class LlamaTokenizer for model_type mistral: TokenizersBackend
    # on tokenizer.json (MistralCommonBackend instead when the mistral-common package is installed)
    assert type(tokenizer).__name__ in ("TokenizersBackend", "MistralCommonBackend")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "Score it."}], add_generation_prompt=True,
                                         tokenize=False)
    assert text == "<s>[INST] Score it. [/INST]"
    result = LLMThinkingScorer(str(standins[MISTRAL]), batch_size=2, max_new_tokens=4)(
        ["A small lesion in the upper left.", "Two lesions."], questions=["Where is the lesion?", "How many?"],
        references=["upper left", "two"])
    assert len(result.scores) == len(result.outputs) == 2  # a random model's scores may be None


@pytest.mark.parametrize("model_type, processor, expected", [
    ("qwen2_vl", None, ("Qwen2VLProcessor", "Qwen2VLImageProcessorPil")),         # Transformers' map of the type
    ("qwen2_5_vl", "Qwen2_5_VLProcessor", ("Qwen2_5_VLProcessor", "Qwen2VLImageProcessorPil")),  # as shipped
    ("qwen3_vl", "Qwen3VLProcessor", ("Qwen3VLProcessor", "Qwen2VLImageProcessorPil")),  # patch 16, same PIL class
    ("llava", "LlavaProcessor", None),                                               # no video processor: Auto
])
def test_the_images_only_processor_follows_the_checkpoint(monkeypatch, model_type, processor, expected):
    import transformers

    import medrl_lib.models.loading as models

    monkeypatch.setattr(models, "_model_type", lambda path: model_type)
    shipped = {"processor_class": processor} if processor else {}
    monkeypatch.setattr(transformers.ImageProcessingMixin, "get_image_processor_dict", lambda path, **kw: (shipped, {}))
    assert models.image_only_classes("some/model") == expected
