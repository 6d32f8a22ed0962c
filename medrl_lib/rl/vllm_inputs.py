"""What vLLM receives, owned here so that it sees the prompts the policy is trained on (the book's Methods page,
"Rollout engines").

vLLM builds its own image processor from the model folder or hub id (``preprocessor_config.json``: 12,845,056 px
for the hub's Qwen2-VL, not a profile's ``max_pixels``) and expands each image placeholder itself. Handed the
token ids that Transformers' processor has already expanded (what TRL 1.16's colocated engine sends, TRL issues
#6294 and #6401), it expands them a second time: ``2N - 1`` placeholder tokens for an image of ``N``. So:

* the prompt ids vLLM gets hold **one** placeholder per image (:func:`collapse_image_tokens`);
* the image is resized to the size the policy's processor gives it (:func:`fit_image`), and the engine is started
  with the processor's pixel limits (:func:`engine_kwargs`): both sides then count the same ``N``;
* sampling settings are vLLM's own (:func:`sampling_extras`): ``SamplingParams`` has no ``suppress_tokens``, so the
  vision tokens get a logit bias of minus infinity, and generation stops on every end-of-sequence id the
  Transformers path stops on (vLLM reads only the folder's ``generation_config.json``).

>>> collapse_image_tokens([1, 9, 9, 9, 2, 9, 9, 3], 9)
[1, 9, 2, 9, 3]
>>> sampling_extras({"suppress_tokens": [5, 6]}, stop_ids=[7, 8])
{'logit_bias': {5: -inf, 6: -inf}, 'stop_token_ids': [7, 8]}
"""

from __future__ import annotations

import os
from collections.abc import Sequence

#: vLLM's CPU key-value cache in GiB (``VLLM_CPU_KVCACHE_SPACE``) when none is set: room for the rehearsal's batches.
CPU_KV_CACHE_GIB = "1"


def collapse_image_tokens(ids: Sequence[int], image_token_id: int) -> list[int]:
    """``ids`` with every run of ``image_token_id`` cut to one token: the prompt as vLLM expands it itself."""
    out: list[int] = []
    for token in ids:
        if token == image_token_id and out and out[-1] == image_token_id:
            continue
        out.append(int(token))
    return out


def pixel_limits(image_processor) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` of a Qwen2-VL image processor (``size`` holds them as shortest/longest edge)."""
    size = getattr(image_processor, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    low = get("shortest_edge") or getattr(image_processor, "min_pixels", None)
    high = get("longest_edge") or getattr(image_processor, "max_pixels", None)
    if not (low and high):
        raise ValueError(f"{type(image_processor).__name__} gives no pixel limits (size={size!r})")
    return int(low), int(high)


def target_size(width: int, height: int, image_processor) -> tuple[int, int]:
    """``(width, height)`` that the policy's image processor resizes a ``width`` x ``height`` image to (Qwen2-VL's
    ``smart_resize``: multiples of patch x merge, pixels within the processor's limits)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    low, high = pixel_limits(image_processor)
    factor = image_processor.patch_size * image_processor.merge_size
    h, w = smart_resize(height, width, factor=factor, min_pixels=low, max_pixels=high)
    return w, h


def resized(image, size: tuple[int, int], resample=None):
    """``image`` (PIL) in RGB at ``size`` (width, height), bicubic unless ``resample`` names another PIL filter;
    left as it is when it already has that size (the processor then leaves it alone too)."""
    from PIL import Image

    image = image.convert("RGB") if image.mode != "RGB" else image
    if size == image.size:
        return image
    return image.resize(size, resample=Image.Resampling(int(resample)) if resample is not None else Image.BICUBIC)


def fit_image(image, image_processor):
    """``image`` (PIL) at :func:`target_size`, resized as the processor resizes (its resample filter): an image vLLM's
    processor leaves at its size, so that it yields the policy's number of image tokens."""
    return resized(image, target_size(*image.size, image_processor), getattr(image_processor, "resample", None))


def engine_kwargs(image_processor) -> dict:
    """Keyword arguments of ``vllm.LLM`` that make its multimodal processor follow the policy's: one image per
    prompt, no video, the processor's pixel limits. On a CPU build of vLLM, the key-value cache size is set here
    (``VLLM_CPU_KVCACHE_SPACE``, :data:`CPU_KV_CACHE_GIB` GiB) unless the environment sets it."""
    low, high = pixel_limits(image_processor)
    if vllm_is_cpu_build():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
    return {"limit_mm_per_prompt": {"image": 1, "video": 0},
            "mm_processor_kwargs": {"size": {"shortest_edge": low, "longest_edge": high}}}


def sampling_extras(generation_kwargs: dict | None, stop_ids: Sequence[int]) -> dict:
    """``generation_kwargs`` (written for Transformers' ``generate``) as ``vllm.SamplingParams`` takes them:
    ``suppress_tokens`` becomes a logit bias of minus infinity on those ids, and ``stop_ids`` are added to
    ``stop_token_ids``."""
    out = dict(generation_kwargs or {})
    suppressed = out.pop("suppress_tokens", None) or []
    if suppressed:
        bias = dict(out.get("logit_bias") or {})
        bias.update({int(i): float("-inf") for i in suppressed})
        out["logit_bias"] = bias
    stops = [int(i) for i in out.get("stop_token_ids") or []]
    out["stop_token_ids"] = stops + [int(i) for i in stop_ids if int(i) not in stops]
    return out


def vllm_is_cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (the ``vllm-cpu`` distribution), which runs without a GPU."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("vllm-cpu")
    except PackageNotFoundError:
        return False
    return True
