"""Small local stand-ins for the paper profile's hub models, saved in the hubs' own file layouts.

The 'rehearsal' profile is the paper profile with every hub id replaced by the folder of a stand-in built here:
the same architectures, tokenizer classes, file names and config formats as the hub repositories (legacy
``config.json`` of Qwen2-VL with ``rope_scaling`` and checkpoint keys ``model.*``/``visual.*``, sharded
safetensors, bfloat16 weights, ``preprocessor_config.json`` naming ``Qwen2VLImageProcessor``, hub-style
``tokenizer_config.json``, BioGPT's fastBPE ``vocab.json``/``merges.txt`` read by its slow tokenizer, and
so on), only tiny. They go down exactly the code branches of the hub ids (no :data:`medrl_lib.models.loading.TINY_MARKER`
in them), so a rehearsal on CPU exercises the loading, prompting, generation and metric code that the paper
run will take on GPUs, without the network.

- ``Qwen/Qwen2-VL-2B-Instruct``: a ``Qwen2VLForConditionalGeneration`` (hidden 128, 2 layers) tuned briefly (a
  plain torch loop on synthetic items) to answer the reasoning prompt as ``<think>...</think><answer>X</answer>``;
  the chat template with the default system turn (``chat_template.json`` and ``tokenizer_config.json``), EOS
  ``<|im_end|>``, generation EOS ids ``[<|im_end|>, <|endoftext|>]`` and the hub's near-greedy sampling defaults.
- ``Qwen/Qwen2-VL-2B``: the same architecture and vocabulary, randomly initialised (the instruct stand-in is
  tuned from it); no chat template anywhere, EOS ``<|endoftext|>`` only.
- ``microsoft/biogpt``: a random ``BioGptForCausalLM`` (``pytorch_model.bin``) with the slow ``BioGptTokenizer``
  (Moses, then fastBPE ``vocab.json``/``merges.txt``; needs sacremoses).
- ``cross-encoder/stsb-roberta-base``: a random one-label ``RobertaForSequenceClassification`` with RoBERTa's
  byte-level BPE.
- ``mistralai/Mistral-7B-Instruct-v0.2``: a random ``MistralForCausalLM`` (bfloat16) with a Llama-style
  byte-fallback BPE ``tokenizer.json`` and Mistral's ``[INST] ... [/INST]`` chat template.

Each folder is ``root/<name after the slash>`` (the hub's name, so that a profile can name it), built once by
:func:`medrl_lib.models.loading.build_once` and reused while its :data:`STANDIN_FILE` records the same hub id, seed and
:data:`VERSION`. The build is deterministic given ``seed`` and takes well under a minute on two CPU cores.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch

from medrl_lib.data.synthetic import reasoning_target
from medrl_lib.models.hub_files import added_token, byte_alphabet, save_sharded, train_bpe, write_json, write_vocab_merges
from medrl_lib.models.loading import build_once, is_built

#: File written last into each stand-in folder: its hub id, seed and build version (the folder is complete).
STANDIN_FILE = "medrl_standin.json"
#: Version of the stand-in builds; bump it when a stand-in changes, so that cached folders are rebuilt.
VERSION = 2

INSTRUCT = "Qwen/Qwen2-VL-2B-Instruct"
BASE = "Qwen/Qwen2-VL-2B"
BIOGPT = "microsoft/biogpt"
CROSS_ENCODER = "cross-encoder/stsb-roberta-base"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.2"
#: The hub ids that :func:`build_hub_standins` makes stand-ins for.
HUB_IDS = (INSTRUCT, BASE, BIOGPT, CROSS_ENCODER, MISTRAL)

#: Qwen2-VL's added tokens, in the hub's id order (they follow the regular vocabulary, from 151643 on the hub).
QWEN2_VL_SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
]

#: Qwen2-VL's ``preprocessor_config.json`` as both hub repositories ship it.
QWEN2_VL_PREPROCESSOR = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}

#: Mistral-7B-Instruct-v0.2's chat template (user/assistant turns only, ``[INST] ... [/INST]``).
MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# sizes of the stand-ins (the Qwen2-VL head_dim 32 splits into M-RoPE sections [4, 6, 6])
_QWEN_ARCH = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vision_depth=1, vision_embed_dim=32, vision_num_heads=2)
_QWEN_VOCAB = 1000  # regular BPE tokens (the special tokens come after them)
_INSTRUCT_STEPS = 150
_INSTRUCT_BATCH = 8
_INSTRUCT_LR = 3e-3
_IMAGE_SIZE = 56


def standin_folder(root: Path, hub_id: str) -> Path:
    return root / hub_id.split("/", 1)[1]


def _meta(hub_id: str, seed: int) -> dict:
    return {"hub_id": hub_id, "seed": seed, "version": VERSION, "kind": "hub-standin"}


def is_complete(path: str | Path, hub_id: str, seed: int) -> bool:
    """True when ``path`` holds the finished stand-in of ``hub_id`` built with ``seed`` by this :data:`VERSION`."""
    return is_built(path, _meta(hub_id, seed), STANDIN_FILE)


def build_standin(path: Path, hub_id: str, seed: int, write) -> Path:
    """The stand-in folder ``path`` of ``hub_id``, written once by ``write(folder)`` (:func:`build_once`)."""
    return build_once(path, write, _meta(hub_id, seed), marker=STANDIN_FILE)


def build_hub_standins(root: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Build (once) the stand-ins of :data:`HUB_IDS` under ``root`` and return ``{hub id: folder}``.

    A folder already complete for ``seed`` (see :func:`is_complete`) is reused as it is; a missing or stale one
    is rebuilt atomically. Deterministic given ``seed``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out = {hub_id: standin_folder(root, hub_id) for hub_id in HUB_IDS}
    with seeded(seed):
        if not all(is_complete(out[h], h, seed) for h in (INSTRUCT, BASE)):
            _build_qwen2_vl(out[INSTRUCT], out[BASE], seed)
        for hub_id, build in ((BIOGPT, _write_biogpt), (CROSS_ENCODER, _write_cross_encoder),
                              (MISTRAL, _write_mistral)):
            if not is_complete(out[hub_id], hub_id, seed):
                build_standin(out[hub_id], hub_id, seed, lambda tmp, b=build: b(tmp, seed))
    return out


class seeded:
    """Fork torch's global random state for the build, restoring it afterwards."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self):
        self.state = torch.random.get_rng_state()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc):
        torch.random.set_rng_state(self.state)


# =============================================================================================
# the stand-in tokenizers' corpus (their BPE training and hub-style files: medrl_lib.models.hub_files)
# =============================================================================================


def _corpus(seed: int, n_items: int = 300) -> list[str]:
    """Texts the stand-in tokenizers are trained on: synthetic questions, options, reports, reasoning targets,
    the prompt templates, the judge's and the thinking scorer's prompts, and the chat template's words."""
    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, generate
    from medrl_lib.rl.prompts import PROMPT_TEMPLATES, prompt_text

    ds = generate(SyntheticConfig(n_items=n_items, modalities=MODALITIES, seed=50_000 + seed, image_size=28,
                                  id_prefix="standin-tok")).remove_columns("image")
    texts = list(PROMPT_TEMPLATES.values()) + ["system\nYou are a helpful assistant.", "user\n", "assistant\n",
                                              "Yes No Yes No Answer: Yes Answer: No score 1 2 3 4 5 6 7 8 9 10"]
    for row in ds:
        texts.append(prompt_text(row["question"], row["options"]))
        texts.append(reasoning_target(row))
    from medrl_lib.rl.judges import judge_prompt
    from medrl_lib.rl.thinking import thinking_prompt

    texts += [judge_prompt("Where is the lesion?", "A small lesion in the upper left.", 2000),  # the metric models'
              thinking_prompt("Where is the lesion?", "upper left", "A small lesion in the upper left.")]  # prompts
    return texts


# =============================================================================================
# Qwen2-VL-2B-Instruct and Qwen2-VL-2B
# =============================================================================================


def qwen_tokenizer(seed: int):
    """The shared Qwen2 byte-level BPE (Qwen2's normaliser and pre-tokeniser), special tokens after the regular
    vocabulary; returns ``(tokenizer, vocab, merges)`` with the instruct flavour (EOS ``<|im_end|>``)."""
    from tokenizers import Regex, pre_tokenizers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    vocab, merges = train_bpe(_corpus(seed), _QWEN_VOCAB, pre_tokenizer=pre, normalize="NFC",
                               alphabet=byte_alphabet())
    n = len(vocab)
    full = dict(vocab, **{t: n + i for i, t in enumerate(QWEN2_VL_SPECIAL_TOKENS)})
    tokenizer = Qwen2Tokenizer(vocab=dict(full), merges=list(merges), eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", unk_token=None, bos_token=None,
                               additional_special_tokens=QWEN2_VL_SPECIAL_TOKENS[1:], errors="replace",
                               model_max_length=32768, clean_up_tokenization_spaces=False, split_special_tokens=False)
    assert tokenizer.convert_tokens_to_ids(QWEN2_VL_SPECIAL_TOKENS) == list(range(n, n + len(QWEN2_VL_SPECIAL_TOKENS)))
    return tokenizer, vocab, merges


def _qwen_config(tokenizer, *, instruct: bool):
    """Qwen2-VL's ``config.json`` in the hub's (pre-v5, flat) layout, at the stand-in's size."""
    a = _QWEN_ARCH
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN2_VL_SPECIAL_TOKENS}
    head_dim = a["hidden_size"] // a["num_attention_heads"]
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    vocab_size = -(-len(tokenizer) // 128) * 128  # the hub pads the embedding past the tokenizer (151936 > 151657)
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"] if instruct else ids["<|endoftext|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": a["hidden_size"],
        "initializer_range": 0.02,
        "intermediate_size": a["intermediate_size"],
        "max_position_embeddings": 32768,
        "max_window_layers": a["num_hidden_layers"],
        "model_type": "qwen2_vl",
        "num_attention_heads": a["num_attention_heads"],
        "num_hidden_layers": a["num_hidden_layers"],
        "num_key_value_heads": a["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2" if instruct else "4.45.0.dev0",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": a["vision_depth"],
            "embed_dim": a["vision_embed_dim"],
            "mlp_ratio": 4,
            "num_heads": a["vision_num_heads"],
            "in_chans": 3,
            "hidden_size": a["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [t, h, half - t - h]},
        "vocab_size": vocab_size,
    }


def _qwen_generation_config(tokenizer, *, instruct: bool) -> dict:
    """``generation_config.json`` as each hub repository sets it (the instruct's is near-greedy sampling)."""
    eot, im_end = (tokenizer.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>"))
    if instruct:
        return {"bos_token_id": eot, "pad_token_id": eot, "do_sample": True, "eos_token_id": [im_end, eot],
                "repetition_penalty": 1.0, "temperature": 0.01, "top_p": 0.001, "top_k": 1,
                "transformers_version": "4.37.0"}
    return {"bos_token_id": eot, "do_sample": False, "eos_token_id": eot, "max_new_tokens": 2048,
            "transformers_version": "4.45.0.dev0"}


def legacy_qwen_keys(state: dict[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    """Checkpoint keys as the hub stores them (``model.layers.*``, ``visual.*``; no ``lm_head`` when tied)."""
    out = {}
    for k, v in state.items():
        if tied and k == "lm_head.weight":
            continue
        if k.startswith("model.language_model."):
            k = "model." + k[len("model.language_model."):]
        elif k.startswith("model.visual."):
            k = k[len("model."):]
        out[k] = v
    return out


def _write_qwen_folder(folder: Path, model, tokenizer, vocab, merges, *, instruct: bool) -> None:
    """One Qwen2-VL repository's files: config, generation config, sharded bf16 weights, tokenizer files,
    preprocessor config and (instruct only) the chat template."""
    from medrl_lib.models.loading import QWEN2_VL_CHAT_TEMPLATE

    write_json(folder / "config.json", _qwen_config(tokenizer, instruct=instruct))
    write_json(folder / "generation_config.json", _qwen_generation_config(tokenizer, instruct=instruct))
    save_sharded(legacy_qwen_keys(model.state_dict(), tied=True), folder, 2, torch.bfloat16)
    tokenizer.save_pretrained(str(folder))  # tokenizer.json (its tokenizer_config.json is replaced below)
    for name in ("chat_template.jinja", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    write_vocab_merges(folder, vocab, merges, "#version: 0.2")
    n = len(vocab)
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": {str(n + i): added_token(t) for i, t in enumerate(QWEN2_VL_SPECIAL_TOKENS)},
        "additional_special_tokens": QWEN2_VL_SPECIAL_TOKENS[1:],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>" if instruct else "<|endoftext|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    if instruct:
        config["chat_template"] = QWEN2_VL_CHAT_TEMPLATE
        write_json(folder / "chat_template.json", {"chat_template": QWEN2_VL_CHAT_TEMPLATE})
    write_json(folder / "tokenizer_config.json", dict(sorted(config.items())))
    write_json(folder / "preprocessor_config.json", QWEN2_VL_PREPROCESSOR)


def _qwen_model(tokenizer, seed: int):
    """The randomly initialised stand-in (the base), built from the hub-layout config."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    config = Qwen2VLConfig(**{k: v for k, v in _qwen_config(tokenizer, instruct=False).items()
                              if k not in ("architectures", "model_type", "transformers_version", "torch_dtype")})
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).float()
    return model


def tune_instruct(model, tokenizer, seed: int, processor=None, steps: int = _INSTRUCT_STEPS) -> list[float]:
    """A short supervised run (plain torch loop, ``steps`` steps) on synthetic items, reasoning prompt through the
    instruct chat template, loss on the target ``<think>...</think><answer>X</answer><|im_end|>`` only; returns the
    losses. ``processor``: the family's (default: Qwen2-VL's, with the instruct template)."""
    from transformers import Qwen2VLImageProcessorPil

    from medrl_lib.data.schema import MODALITIES
    from medrl_lib.data.synthetic import SyntheticConfig, generate
    from medrl_lib.models.loading import QWEN2_VL_CHAT_TEMPLATE, processor_class
    from medrl_lib.rl.prompts import chat_messages

    if processor is None:
        image_processor = Qwen2VLImageProcessorPil(**{k: QWEN2_VL_PREPROCESSOR[k] for k in (
            "min_pixels", "max_pixels", "patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")})
        tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
        processor = processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                      chat_template=QWEN2_VL_CHAT_TEMPLATE)
    n = steps * _INSTRUCT_BATCH
    ds = generate(SyntheticConfig(n_items=n, modalities=MODALITIES, seed=60_000 + seed, image_size=_IMAGE_SIZE,
                                  id_prefix="standin-instruct"))
    rows = ds.remove_columns("image")
    images = ds["image"]
    tokenizer.padding_side = "right"
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator).tolist()
    optimizer = torch.optim.AdamW(model.parameters(), lr=_INSTRUCT_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 5) * max(0.05, 1 - step / steps))
    model.train()
    losses = []
    for step in range(steps):
        batch = order[step * _INSTRUCT_BATCH:(step + 1) * _INSTRUCT_BATCH]
        prompts = [processor.apply_chat_template(chat_messages(rows[i]["question"], rows[i]["options"]),
                                                 add_generation_prompt=True, tokenize=False) for i in batch]
        full = [p + reasoning_target(rows[i]) + "<|im_end|>\n" for p, i in zip(prompts, batch)]
        imgs = [images[i] for i in batch]
        enc = processor(text=full, images=imgs, padding=True, return_tensors="pt")
        prompt_lens = [len(x) for x in processor(text=prompts, images=imgs)["input_ids"]]
        labels = enc["input_ids"].clone()
        labels[enc["attention_mask"] == 0] = -100
        for r, k in enumerate(prompt_lens):
            labels[r, :k] = -100
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    tokenizer.padding_side = "left"
    return losses


def _build_qwen2_vl(instruct_path: Path, base_path: Path, seed: int) -> None:
    """Both Qwen2-VL stand-ins: one tokenizer, the base randomly initialised, the instruct tuned from it."""
    import copy

    tokenizer, vocab, merges = qwen_tokenizer(seed)
    base = _qwen_model(tokenizer, seed)
    if not is_complete(base_path, BASE, seed):
        base_tok = copy.deepcopy(tokenizer)
        base_tok.eos_token = "<|endoftext|>"
        build_standin(base_path, BASE, seed,
               lambda tmp: _write_qwen_folder(tmp, base, base_tok, vocab, merges, instruct=False))
    if not is_complete(instruct_path, INSTRUCT, seed):
        instruct = copy.deepcopy(base)
        losses = tune_instruct(instruct, tokenizer, seed)

        def write(tmp: Path) -> None:
            _write_qwen_folder(tmp, instruct, tokenizer, vocab, merges, instruct=True)
            write_json(tmp / "medrl_standin_training.json",
                        {"steps": _INSTRUCT_STEPS, "batch": _INSTRUCT_BATCH, "lr": _INSTRUCT_LR,
                         "first_loss": losses[0], "final_loss": losses[-1]})

        build_standin(instruct_path, INSTRUCT, seed, write)


# =============================================================================================
# microsoft/biogpt
# =============================================================================================


def _moses_words(texts: list[str]) -> list[str]:
    """The texts as BioGptTokenizer's Moses step splits them (English, aggressive dash splits, escaped)."""
    from sacremoses import MosesTokenizer

    moses = MosesTokenizer(lang="en")
    return [" ".join(moses.tokenize(t, aggressive_dash_splits=True, return_str=False, escape=True)) for t in texts]


def _write_biogpt(folder: Path, seed: int) -> None:
    """BioGPT's files: ``vocab.json`` (``<s> <pad> </s> <unk>`` first) and fastBPE ``merges.txt`` (``a b count``
    lines, ``</w>`` ending a word), read by the slow ``BioGptTokenizer``; ``config.json`` and
    ``pytorch_model.bin`` of a small random ``BioGptForCausalLM``."""
    from tokenizers import pre_tokenizers
    from transformers import BioGptConfig, BioGptForCausalLM

    words = _moses_words(_corpus(seed))
    trained, merges = train_bpe(words, 600, pre_tokenizer=pre_tokenizers.WhitespaceSplit(),
                                 end_of_word_suffix="</w>")
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokens = specials + [t for t in trained if t not in specials]
    # every character inside and at the end of a word (BioGPT's vocabulary has both forms of each)
    alphabet = sorted(set("".join(words).replace(" ", "")) | set(string.ascii_letters + string.digits))
    have = set(tokens)
    tokens += [t for c in alphabet for t in (c, c + "</w>") if t not in have]
    vocab = {t: i for i, t in enumerate(tokens)}
    write_json(folder / "vocab.json", vocab)
    (folder / "merges.txt").write_text("".join(f"{a} {b} {len(merges) - i}\n" for i, (a, b) in enumerate(merges)),
                                       encoding="utf-8")
    config = BioGptConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, max_position_embeddings=1024, scale_embedding=True,
                          layer_norm_eps=1e-12, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed + 2)
    model = BioGptForCausalLM(config)
    model.config.architectures = ["BioGptForCausalLM"]
    model.config.save_pretrained(str(folder))
    model.generation_config.save_pretrained(str(folder))
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items() if k != "output_projection.weight"}
    torch.save(state, folder / "pytorch_model.bin")


# =============================================================================================
# cross-encoder/stsb-roberta-base
# =============================================================================================


def _write_cross_encoder(folder: Path, seed: int) -> None:
    """A one-label ``RobertaForSequenceClassification`` with RoBERTa's byte-level BPE (``vocab.json``,
    ``merges.txt``, ``tokenizer.json``; ``<s> <pad> </s> <unk>`` first, ``<mask>`` last)."""
    from tokenizers import pre_tokenizers
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizer

    trained, merges = train_bpe(_corpus(seed), 600, pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False),
                                 alphabet=byte_alphabet())
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokens = specials + [t for t in trained if t not in specials + ["<mask>"]] + ["<mask>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = RobertaTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=512)
    tokenizer.save_pretrained(str(folder))
    write_vocab_merges(folder, vocab, merges, "#version: 0.2")
    write_json(folder / "tokenizer_config.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "errors": "replace", "mask_token": "<mask>",
        "model_max_length": 512, "pad_token": "<pad>", "sep_token": "</s>", "tokenizer_class": "RobertaTokenizer",
        "trim_offsets": True, "unk_token": "<unk>", "add_prefix_space": False})
    write_json(folder / "special_tokens_map.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>", "pad_token": "<pad>",
        "sep_token": "</s>", "unk_token": "<unk>"})
    config = RobertaConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=128, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, num_labels=1,
                           architectures=["RobertaForSequenceClassification"])
    torch.manual_seed(seed + 3)
    RobertaForSequenceClassification(config).save_pretrained(str(folder))
    (folder / "generation_config.json").unlink(missing_ok=True)


# =============================================================================================
# mistralai/Mistral-7B-Instruct-v0.2
# =============================================================================================


def _write_mistral(folder: Path, seed: int) -> None:
    """A small ``MistralForCausalLM`` with a Llama-style tokenizer (``tokenizer.json``: BPE over ``▁``-marked
    text with byte fallback; ``<unk> <s> </s>``, then the 256 byte tokens ``<0x00>``..``<0xFF>``, then the
    merges) and Mistral's chat template; no ``tokenizer.model`` (sentencepiece is not installed here, and v5
    loads ``tokenizer.json`` first)."""
    from tokenizers import pre_tokenizers
    from transformers import LlamaTokenizer, MistralConfig, MistralForCausalLM

    trained, merges = train_bpe(_corpus(seed), 700,
                                 pre_tokenizer=pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"))
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tokens = specials + [t for t in trained if t not in specials]
    vocab = {t: i for i, t in enumerate(tokens)}
    tokenizer = LlamaTokenizer(vocab=dict(vocab), merges=list(merges), add_bos_token=True, add_eos_token=False)
    tokenizer.save_pretrained(str(folder))
    for name in ("chat_template.jinja",):
        (folder / name).unlink(missing_ok=True)
    write_json(folder / "tokenizer_config.json", {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(i): added_token(t) for i, t in enumerate(["<unk>", "<s>", "</s>"])},
        "additional_special_tokens": [],
        "bos_token": "<s>",
        "chat_template": MISTRAL_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": True,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    })
    write_json(folder / "special_tokens_map.json", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    config = MistralConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
                           rope_theta=1000000.0, sliding_window=None, rms_norm_eps=1e-5, tie_word_embeddings=False,
                           bos_token_id=1, eos_token_id=2, architectures=["MistralForCausalLM"])
    torch.manual_seed(seed + 4)
    model = MistralForCausalLM(config)
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
    model.to(torch.bfloat16).save_pretrained(str(folder))
