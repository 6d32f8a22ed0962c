"""Profiles: every setting of a run, as dataclasses with a docstring per field, loaded from ``configs/*.yaml``.

A profile file holds nested mappings matching :class:`Profile`. Loading is strict: an unknown key or a value
of the wrong type is a :class:`ConfigError` naming the file and the dotted key. Overrides (from a notebook's
``parameters`` cell or the command line) use dotted keys too.

>>> p = load_profile("smoke", overrides={"grpo.max_steps": 3})
>>> p.name, p.grpo.max_steps, p.grpo.loss_type
('smoke', 3, 'grpo')
>>> load_profile("smoke", overrides={"grpo.bogs": 1})
Traceback (most recent call last):
...
medrl_lib.common.strict.ConfigError: overrides: unknown key 'grpo.bogs' (did you mean 'grpo.seed'?)
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from medrl_lib.common.strict import ConfigError, from_dict, known_keys, set_dotted, suggestion
from medrl_lib.config.settings import CHOICES, QUESTION_TYPES, Profile

#: Folder of the shipped profiles (``configs/`` at the repository root, or MEDRL_CONFIG_DIR).
CONFIG_DIR = Path(os.environ.get("MEDRL_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))


def _setting(p: Profile, key: str) -> Any:
    """The value of the dotted ``key`` in ``p``.

    >>> _setting(Profile(), "standins.instruct.target")
    'reasoning'
    """
    value: Any = p
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(p: Profile, where: str) -> Profile:
    """Check values (not only types) and raise a ConfigError naming ``where`` and the key."""
    for key, allowed in CHOICES.items():
        value = _setting(p, key)
        if value not in allowed:
            raise ConfigError(f"{where}: key '{key}' is {value!r}; expected one of {list(allowed)}")
    positive = ["data.train_size", "data.test_per_modality", "data.test_size", "grpo.max_steps", "grpo.num_generations",
                "grpo.max_completion_length", "grpo.max_prompt_length", "grpo.prompts_per_device",
                "grpo.gradient_accumulation_steps", "eval.batch_size", "eval.max_new_tokens", "num_processes",
                "sft.max_steps", "sft.dpo_max_steps", "panel.per_benchmark"]
    for key in positive:
        value = _setting(p, key)
        if value <= 0:
            raise ConfigError(f"{where}: key '{key}' must be positive, got {value}")
    if p.grpo.save_total_limit < 0:
        raise ConfigError(f"{where}: key 'grpo.save_total_limit' must be >= 0 (0 keeps all), got {p.grpo.save_total_limit}")
    if p.data.image_size % 28:
        raise ConfigError(f"{where}: key 'data.image_size' must be a multiple of 28, got {p.data.image_size}")
    if not 2 <= p.data.min_options <= p.data.max_options <= 6:
        raise ConfigError(f"{where}: keys 'data.min_options'/'data.max_options' must satisfy 2 <= min <= max <= 6")
    if p.standins.base.text_items < 0:
        raise ConfigError(f"{where}: key 'standins.base.text_items' must be >= 0, got {p.standins.base.text_items}")
    for key in ("standins.base.text_tagged_fraction", "standins.instruct.plain_fraction",
                "standins.instruct.plain_prompt_fraction"):
        if not 0.0 <= _setting(p, key) <= 1.0:
            raise ConfigError(f"{where}: key '{key}' must lie in [0, 1], got {_setting(p, key)}")
    unknown = sorted(set(p.standins.instruct.plain_types) - set(QUESTION_TYPES))
    if unknown:
        raise ConfigError(f"{where}: key 'standins.instruct.plain_types' names unknown question type {unknown[0]!r}"
                          f" (known: {', '.join(QUESTION_TYPES)})")
    if p.standins.per_seed and p.model.kind == "hub":
        raise ConfigError(f"{where}: key 'standins.per_seed' must be false with model.kind 'hub' (a hub model is one "
                          "draw; per-seed start models are built for tiny profiles only)")
    for key in ("grpo.vllm_gpu_memory_utilization", "eval.vllm_gpu_memory_utilization"):
        if not 0.0 < _setting(p, key) <= 1.0:
            raise ConfigError(f"{where}: key '{key}' must lie in (0, 1], got {_setting(p, key)}")
    g = p.grpo
    if g.vllm_max_model_length and g.vllm_max_model_length < g.max_prompt_length + g.max_completion_length:
        raise ConfigError(f"{where}: key 'grpo.vllm_max_model_length' ({g.vllm_max_model_length}) is below "
                          f"max_prompt_length + max_completion_length ({g.max_prompt_length + g.max_completion_length})")
    if p.grpo.num_generations < 2:
        raise ConfigError(f"{where}: key 'grpo.num_generations' must be at least 2 (advantages are group-relative)")
    known = known_keys(Profile)
    for section in ("medvlm_r1", "length_rewards"):
        for key in getattr(p, section):
            if key not in known or key.startswith(("medvlm_r1", "length_rewards")):
                raise ConfigError(f"{where}: key '{section}.{key}' is not a setting (known: {', '.join(known)})")
    if not p.model.base and p.model.init == "base":
        raise ConfigError(f"{where}: key 'model.init' is 'base' but 'model.base' is empty (no base checkpoint)")
    if p.model.kind == "hub" and not p.model.instruct:
        raise ConfigError(f"{where}: key 'model.instruct' must name the instruct checkpoint (a hub id or a folder)")
    if not 0 <= p.grpo.beta:
        raise ConfigError(f"{where}: key 'grpo.beta' must be >= 0")
    if not 0 < p.grpo.epsilon < 1:
        raise ConfigError(f"{where}: key 'grpo.epsilon' must lie in (0, 1)")
    if (p.grpo.loss_type == "dr_grpo") != (p.grpo.scale_rewards == "none"):
        import warnings

        warnings.warn(f"{where}: loss_type={p.grpo.loss_type!r} with scale_rewards={p.grpo.scale_rewards!r} "
                      "mixes GRPO and Dr.GRPO (Methods, Losses: GRPO pairs grpo+group, Dr.GRPO dr_grpo+none)", stacklevel=3)
    return p


def profile_path(name_or_path: str | Path) -> Path:
    """``configs/<name>.yaml`` for a profile name, or the path itself."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    return CONFIG_DIR / f"{name_or_path}.yaml"


def _deep_merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def profile_data(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """The settings of the profile file ``path`` as a mapping. A file with ``extends: <profile>`` holds only what
    differs from that profile (its mappings merge key by key into the parent's) and must set its own ``name``, the
    folder its results go to."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigError(f"{path}: key 'extends' must name a profile, got {parent!r}")
    if "name" not in data:
        raise ConfigError(f"{path}: a profile that extends another must set its own 'name' (its results folder)")
    parent_path = profile_path(parent) if Path(parent).suffix not in (".yaml", ".yml") else path.parent / parent
    if parent_path.resolve() in _seen or parent_path.resolve() == path.resolve():
        raise ConfigError(f"{path}: 'extends: {parent}' makes a cycle of profiles")
    if not parent_path.exists():
        raise ConfigError(f"{path}: key 'extends': no such profile file {parent_path}"
                          + suggestion(Path(parent).stem, [q.stem for q in CONFIG_DIR.glob("*.yaml")], "profiles"))
    return _deep_merge(profile_data(parent_path, (*_seen, path.resolve())), data)


def load_profile(name_or_path: str | Path = "cpu", overrides: dict[str, Any] | None = None) -> Profile:
    """Load a profile by name (``smoke``, ``cpu``, ``paper``, ``today`` ...) or path (a file may extend another:
    :func:`profile_data`), apply dotted-key ``overrides``, validate."""
    path = profile_path(name_or_path)
    if not path.exists():
        raise ConfigError(f"{path}: no such profile file"
                          + suggestion(Path(name_or_path).stem, [q.stem for q in CONFIG_DIR.glob("*.yaml")], "profiles"))
    data = profile_data(path)
    profile = from_dict(Profile, data, str(path))
    if overrides:
        known = known_keys(Profile)
        merged = copy.deepcopy(data)
        for key, value in overrides.items():
            if key not in known and not any(key.startswith(k + ".") for k in known if k.endswith("reward_weights")):
                raise ConfigError(f"overrides: unknown key '{key}'" + suggestion(key, known))
            set_dotted(merged, key, value)
        profile = from_dict(Profile, merged, "overrides")
    return validate(profile, str(path) if not overrides else f"{path} + overrides")


def repo_root() -> Path:
    """The repository root (the folder holding ``configs/``)."""
    return CONFIG_DIR.parent


def resolve_path(p: str) -> Path:
    """An absolute path for a profile path setting (relative ones are taken from the repository root)."""
    path = Path(p)
    return path if path.is_absolute() else repo_root() / path


def is_local(source: str) -> bool:
    """Whether a model id or data path setting names a local path (absolute, or starting with ``.`` or ``~``)
    rather than a hub id such as ``Qwen/Qwen2-VL-2B``.

    >>> is_local("Qwen/Qwen2-VL-2B"), is_local(".cache/medrl/rehearsal/models/biogpt"), is_local("/data/pmc")
    (False, True, True)
    """
    return bool(source) and (source.startswith((".", "/", "~")) or Path(source).is_absolute())
