"""Models: the tiny offline Qwen2-VL of the cpu/smoke profiles, and hub models for the paper profile.

The tiny model is a real ``Qwen2VLForConditionalGeneration`` built from a small config, with a byte-level
BPE tokenizer trained locally on the synthetic corpus and Qwen2-VL's special tokens and chat template, so that
every code path (TRL trainers, batched generation, M-RoPE, the vision tower) is the one the 2B model takes.
Nothing is downloaded: the build is deterministic given its config and corpus; :mod:`medrl_lib.training.standins` builds
it once (:func:`build_once`) in a folder keyed by the hash of both.

Its architecture is :class:`medrl_lib.config.TinyModelConfig` (a profile setting).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

import torch

from medrl_lib.config import TinyModelConfig

#: Qwen2-VL's special tokens, in the order the tiny tokenizer reserves them.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

#: A chat template of Qwen2-VL's shape (no default system turn), used by the tiny tokenizer and processor.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2-VL-Instruct's chat template (the hub's ``chat_template.json``): a default system turn "You are a helpful
#: assistant." unless the conversation starts with one, ``<|im_start|>role\n ... <|im_end|>\n`` turns, images and
#: videos as ``<|vision_start|><|image_pad|><|vision_end|>`` placeholders. A Qwen2-VL processor that ships no
#: template (the base model ``Qwen/Qwen2-VL-2B``) is given this one by :func:`load_model`, unless
#: ``chat_template_from`` names the instruct model to copy it from.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: The token that ends a turn of :data:`QWEN2_VL_CHAT_TEMPLATE` (the instruct model's EOS).
QWEN2_VL_END_OF_TURN = "<|im_end|>"

#: Marker file of a tiny model folder, written by :func:`build_once` with the settings that built it; a folder
#: holding it is loaded as a tiny model by :func:`load_model`.
TINY_MARKER = "medrl_tiny.json"


def train_tokenizer(corpus: Iterable[str], vocab_size: int):
    """Train a byte-level BPE on ``corpus`` and wrap it as a Qwen2-VL-style fast tokenizer (left padding)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        padding_side="left",
        additional_special_tokens=SPECIAL_TOKENS[1:],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def processor_class(name: str = "Qwen2VLProcessor"):
    """Transformers' processor class ``name`` (Qwen2-VL's by default; any Qwen-VL family's) without its video
    processor: the stock one needs torchvision, absent on CPU machines; where the ``vllm`` extra brings it, this
    PIL-based processor is kept, so that preprocessing is the same everywhere.

    One class per name for the tiny models and the hub Qwen-VL models (built once, so ``isinstance`` holds across
    calls); its ``from_pretrained`` is :func:`load_vl_processor`, its ``save_pretrained`` writes the tokenizer (with
    the chat template) and the image processor (naming ``name`` as its processor class), which is what it reloads
    from."""
    return _image_only_class(name)


@functools.lru_cache(maxsize=None)
def _image_only_class(name: str):
    """:func:`processor_class` (one class per name, however it is asked for)."""
    import transformers

    family = getattr(transformers, name)

    class ImageOnlyProcessor(family):
        """A Qwen-VL processor for images only (the PIL image processor); reloads with its own ``from_pretrained``."""

        attributes = ["image_processor", "tokenizer"]

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            kwargs.pop("video_processor", None)
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             chat_template=chat_template, **kwargs)

        @classmethod
        def from_pretrained(cls, path, **kwargs):
            return load_vl_processor(path, **kwargs)

        def save_pretrained(self, path, **kwargs):
            os.makedirs(path, exist_ok=True)
            if self.chat_template and not self.tokenizer.chat_template:
                self.tokenizer.chat_template = self.chat_template
            self.tokenizer.save_pretrained(path)
            self.image_processor.save_pretrained(path)
            config = Path(path) / "preprocessor_config.json"  # the family, for from_pretrained
            config.write_text(json.dumps({**json.loads(config.read_text()), "processor_class": name}, indent=2))

    ImageOnlyProcessor.__name__ = ImageOnlyProcessor.__qualname__ = f"ImageOnly{name}"
    return ImageOnlyProcessor


def image_only_classes(name_or_path: str | Path) -> tuple[str, str] | None:
    """``(processor class, PIL image processor class)`` names of a checkpoint whose processor is built images-only
    (:func:`processor_class`), read from the checkpoint: its ``processor_class`` (``preprocessor_config.json``), else
    the processor Transformers maps its ``model_type`` to, when that processor holds a video processor and the
    model type has a PIL image processor (the Qwen-VL families: Qwen2-VL, Qwen2.5-VL, Qwen3-VL); else None (other
    VLMs go through ``AutoProcessor``)."""
    import transformers
    from transformers import ImageProcessingMixin
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    model_type = _model_type(name_or_path)
    try:
        config, _ = ImageProcessingMixin.get_image_processor_dict(str(name_or_path))
    except OSError:
        config = {}
    name = config.get("processor_class") or PROCESSOR_MAPPING_NAMES.get(model_type)
    backends = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type)
    pil = backends.get("pil") if isinstance(backends, dict) else None
    family = getattr(transformers, name, None) if name else None
    if family is None or pil is None or "video_processor" not in family.get_attributes():
        return None
    return name, pil


def _chat_template_of(name_or_path: str | Path, tokenizer=None) -> str | None:
    """The chat template shipped with a model: the processor's (``chat_template.json`` / ``chat_template.jinja``),
    else the tokenizer's (``tokenizer_config.json``; ``tokenizer``: that tokenizer, already loaded); None when it
    ships none."""
    from transformers import AutoTokenizer, ProcessorMixin

    try:
        processor_dict, _ = ProcessorMixin.get_processor_dict(str(name_or_path))
    except OSError:
        processor_dict = {}
    template = processor_dict.get("chat_template")
    if isinstance(template, dict):
        template = template.get("default")
    if template:
        return template
    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(str(name_or_path))
    return tokenizer.chat_template or None


def _pixel_limit(image_processor) -> int | None:
    """The most pixels the image processor keeps (``size["longest_edge"]``, Qwen2-VL's ``max_pixels``)."""
    size = getattr(image_processor, "size", None) or {}
    limit = size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
    return getattr(image_processor, "max_pixels", None) if limit is None else limit


def check_pixel_limit(image_processor, max_pixels: int | None, name: str = "model") -> None:
    """Raise ``ValueError`` unless the image processor keeps at most exactly ``max_pixels`` pixels (None: no
    check), and at least its minimum."""
    if max_pixels is None:
        return
    limit = _pixel_limit(image_processor)
    if limit != max_pixels:
        raise ValueError(f"{name}: the image processor's pixel limit is {limit}, not the max_pixels={max_pixels} "
                         "asked for; images would be resized to another number of visual tokens")
    size = getattr(image_processor, "size", None) or {}
    low = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    if low is not None and low > max_pixels:
        raise ValueError(f"{name}: max_pixels={max_pixels} is below the image processor's min_pixels={low}")


def load_vl_processor(name_or_path: str | Path, *, max_pixels: int | None = None,
                      chat_template_from: str | Path | None = None):
    """The images-only processor of a Qwen-VL folder or hub id, of its family (:func:`image_only_classes`): its
    tokenizer, the PIL image processor read from its ``preprocessor_config.json`` (with ``max_pixels`` applied and
    checked), and its chat template; one that ships no template gets ``chat_template_from``'s, else
    :data:`QWEN2_VL_CHAT_TEMPLATE` with a warning. The template is set on the processor and on its tokenizer (TRL
    and our code read either). Returns the processor; ``processor.borrowed_chat_template`` says whether the
    template was taken from elsewhere."""
    import transformers
    from transformers import AutoTokenizer

    classes = image_only_classes(name_or_path)
    if classes is None:
        raise ValueError(f"{name_or_path}: not a Qwen-VL checkpoint (its processor is not built images-only)")
    name, pil = classes
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    extra = {"max_pixels": max_pixels} if max_pixels else {}
    image_processor = getattr(transformers, pil).from_pretrained(str(name_or_path), **extra)
    check_pixel_limit(image_processor, max_pixels, str(name_or_path))
    template, borrowed = _chat_template_of(name_or_path, tokenizer), False
    if not template:
        borrowed = True
        if chat_template_from is not None:
            template = _chat_template_of(chat_template_from)
            if not template:
                raise ValueError(f"chat_template_from={str(chat_template_from)!r} ships no chat template either")
        else:
            warnings.warn(f"{name_or_path} ships no chat template: using Qwen2-VL-Instruct's "
                          "(models.QWEN2_VL_CHAT_TEMPLATE); pass chat_template_from to copy the instruct model's",
                          stacklevel=3)
            template = QWEN2_VL_CHAT_TEMPLATE
    tokenizer.chat_template = template
    processor = processor_class(name)(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
    processor.borrowed_chat_template = borrowed
    return processor


def _model_type(name_or_path: str | Path) -> str | None:
    """``model_type`` of a folder's or hub id's ``config.json``."""
    from transformers import AutoConfig

    return getattr(AutoConfig.from_pretrained(str(name_or_path)), "model_type", None)


def eos_token_ids(model, tokenizer=None) -> list[int]:
    """Every end-of-sequence id of ``model.generation_config`` (an int or a list), then the tokenizer's if it is
    not among them: what generation must stop on.

    >>> from types import SimpleNamespace as NS
    >>> eos_token_ids(NS(generation_config=NS(eos_token_id=[7, 3])), NS(eos_token_id=3))
    [7, 3]
    >>> eos_token_ids(NS(generation_config=NS(eos_token_id=3)), NS(eos_token_id=9))
    [3, 9]
    """
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = [] if ids is None else [int(ids)] if isinstance(ids, int) else [int(i) for i in ids]
    own = getattr(tokenizer, "eos_token_id", None)
    if own is not None and int(own) not in ids:
        ids.append(int(own))
    return ids


def _add_eos(model, token_id: int) -> None:
    """Make ``token_id`` one more end-of-sequence id of ``model.generation_config``."""
    ids = eos_token_ids(model)
    if token_id not in ids:
        model.generation_config.eos_token_id = ids + [token_id]


def make_processor(tokenizer, image_size: int):
    """A processor whose image processor keeps ``image_size``-square images at their size (patch 14, merge 2)."""
    from transformers import Qwen2VLImageProcessorPil

    pixels = image_size * image_size
    image_processor = Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels)
    return processor_class()(image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE)


def tiny_config(cfg: TinyModelConfig, vocab_size: int, ids: dict[str, int]):
    """The ``Qwen2VLConfig`` of the tiny model: ``cfg``'s architecture, ``vocab_size`` tokens and the ids of
    :data:`SPECIAL_TOKENS` (``ids``)."""
    from transformers import Qwen2VLConfig

    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads,
            max_position_embeddings=cfg.max_position_embeddings,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": cfg.mrope_section},
            tie_word_embeddings=True,
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=cfg.vision_depth,
            embed_dim=cfg.vision_embed_dim,
            hidden_size=cfg.hidden_size,
            num_heads=cfg.vision_num_heads,
            mlp_ratio=4,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def build_tiny_model(cfg: TinyModelConfig, tokenizer):
    """A randomly initialised tiny ``Qwen2VLForConditionalGeneration`` for ``tokenizer`` (deterministic in cfg.seed)."""
    from transformers import Qwen2VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = tiny_config(cfg, len(tokenizer), ids)
    torch.manual_seed(cfg.seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    return model


def config_hash(obj) -> str:
    """The folder key of a built model: :func:`medrl_lib.common.files.config_key` of ``obj`` (dataclasses converted
    with ``asdict``), shortened to 12 hex digits."""
    from medrl_lib.common.files import config_key

    return config_key(asdict(obj) if hasattr(obj, "__dataclass_fields__") else obj)[:12]


def is_built(path: str | Path, meta: dict, marker: str) -> bool:
    """Whether ``path`` is a folder finished by :func:`build_once` for ``meta``: its ``marker`` file holds every
    entry of ``meta``."""
    try:
        stored = json.loads((Path(path) / marker).read_text())
    except (OSError, ValueError):
        return False
    wanted = json.loads(json.dumps(meta, default=str))  # as stored: tuples are lists
    return isinstance(stored, dict) and all(stored.get(k) == v for k, v in wanted.items())


def build_once(path: str | Path, build, meta: dict, *, marker: str) -> Path:
    """The folder ``path``, built once: reused when :func:`is_built` for ``meta``, else ``build(tmp)`` writes it
    into a temporary sibling, which gets the ``marker`` file (``meta`` and the dict ``build`` returns, if any) and
    is then renamed to ``path`` (replacing an unfinished or stale folder). An interrupted build leaves nothing
    that could be taken for a finished one. The build holds the folder's lock (:func:`medrl_lib.common.locks.folder_lock`):
    a second process that needs the same folder, on this machine or another sharing the cache, waits and then finds
    it built, instead of building it again.

    Every model this package builds goes through here: the tiny models and their stand-ins
    (:mod:`medrl_lib.training.standins`, in ``<cache_dir>/<kind>-<hash of their settings>``, :data:`TINY_MARKER`), the
    reference LM (``meta.json``) and the hub stand-ins of the rehearsal (:mod:`medrl_lib.models.hub_standins`)."""
    import shutil

    from medrl_lib.common.console import progress
    from medrl_lib.common.locks import describe, folder_lock

    path = Path(path)
    if is_built(path, meta, marker):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with folder_lock(path, on_wait=lambda who: progress(f"{path.name}: waiting for {describe(who)}, who builds it")):
        if is_built(path, meta, marker):  # built by the process we waited for
            return path
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            extra = build(tmp) or {}
            (tmp / marker).write_text(json.dumps({**meta, **extra}, indent=2, sort_keys=True, default=str))
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def load_model(name_or_path: str | Path, *, dtype: str = "float32", attn_implementation: str | None = None,
               device: str | None = None, max_pixels: int | None = None,
               chat_template_from: str | Path | None = None):
    """Load ``(model, processor)`` from a local folder made by this module, or a hub id (paper profile).

    A folder with the tiny marker (:data:`TINY_MARKER`) is a tiny model. Anything else is a hub VLM or a local
    copy of one (a hub stand-in of :mod:`medrl_lib.models.hub_standins`, a model saved after training), loaded with
    ``AutoModelForImageTextToText``; the network or a warm Hugging Face cache is needed for hub ids.

    Its processor: Qwen-VL models (Qwen2-VL, Qwen2.5-VL, Qwen3-VL: :func:`image_only_classes`, read from the
    checkpoint) get their family's images-only processor of :func:`load_vl_processor` (``AutoProcessor`` would
    build the family's video processor, whose only backend is torchvision, absent on CPU machines), with
    ``max_pixels`` applied and checked:
    ``ValueError`` unless the loaded image processor's pixel limit is exactly ``max_pixels``. Other VLMs go
    through ``AutoProcessor`` (``max_pixels`` passed on when given).

    Chat template decision: a Qwen2-VL model that ships no chat template (the base ``Qwen/Qwen2-VL-2B``) is
    prompted exactly as the instruct model: its processor and tokenizer get the chat template of
    ``chat_template_from`` (a folder or hub id, the profile's instruct model), or, when that is None,
    :data:`QWEN2_VL_CHAT_TEMPLATE` (the instruct template) with a warning. Since that template ends every turn
    with ``<|im_end|>``, that token is then also made an end-of-sequence id of the model's generation config
    (the base's config only lists ``<|endoftext|>``), so generation stops where the turn ends. Both persist when
    the processor and model are saved. A model that ships a template keeps its own.

    ``attn_implementation="flash_attention_2"`` falls back to ``sdpa`` with a warning when the ``flash_attn``
    package is missing.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor, Qwen2VLForConditionalGeneration

    torch_dtype = getattr(torch, dtype)
    if attn_implementation == "flash_attention_2":
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            warnings.warn("flash_attn is not installed: falling back to attn_implementation='sdpa'", stacklevel=2)
            attn_implementation = "sdpa"
    kwargs = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    local = Path(name_or_path)
    if local.exists() and not local.is_dir():
        raise FileNotFoundError(f"{local} is a file, not a model folder")
    if local.is_dir() and (local / TINY_MARKER).exists():
        processor = processor_class().from_pretrained(local)
        model = Qwen2VLForConditionalGeneration.from_pretrained(str(local), **kwargs)
    elif image_only_classes(name_or_path) is not None:  # Qwen2-VL, Qwen2.5-VL, Qwen3-VL: the family's processor
        processor = load_vl_processor(name_or_path, max_pixels=max_pixels, chat_template_from=chat_template_from)
        model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), **kwargs)
        if processor.borrowed_chat_template:
            end = processor.tokenizer.convert_tokens_to_ids(QWEN2_VL_END_OF_TURN)
            if end is not None and end != processor.tokenizer.unk_token_id:
                _add_eos(model, int(end))
    else:  # any other hub VLM (LLaVA, Llama-3.2-Vision, HuatuoGPT-Vision ...) or a local copy of one
        extra = {"max_pixels": max_pixels} if max_pixels else {}
        processor = AutoProcessor.from_pretrained(str(name_or_path), **extra)
        model = AutoModelForImageTextToText.from_pretrained(str(name_or_path), **kwargs)
    if device:
        model.to(device)
    return model, processor


def parameter_counts(path: str | Path) -> dict[str, int]:
    """Parameters of the model saved at ``path``: vision tower, language model (with embeddings) and total."""
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration.from_pretrained(str(path))
    total = sum(p.numel() for p in model.parameters())
    vision = sum(p.numel() for p in model.model.visual.parameters())
    return {"vision": vision, "language": total - vision, "total": total}


def vision_token_ids(model) -> list[int]:
    """Ids of the tokens that mark image and video input (``<|vision_start|>``, ``<|vision_end|>``, ``<|image_pad|>``,
    ``<|video_pad|>``): never to be generated, since Qwen2-VL's M-RoPE reads them as the places of images and videos,
    and one sampled in a completion breaks the positions of the forward pass (a shape mismatch) or the image
    features."""
    config = model.config
    names = ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id")
    return sorted({getattr(config, n) for n in names if isinstance(getattr(config, n, None), int)})
