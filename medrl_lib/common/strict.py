"""Strict dataclasses from YAML: every value checked against its field's annotation, every unknown key an error
naming the file and the dotted key (used by :mod:`medrl_lib.config`)."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A profile, override or setting that cannot be used; the message names the file and the key."""


def check_value(value: Any, tp: Any, where: str, key: str) -> Any:
    """Coerce YAML ``value`` to the annotated type ``tp`` or raise a ConfigError naming ``where`` and ``key``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where, key + ".")
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return check_value(value, arg, where, key)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: key '{key}' has a value of the wrong type: {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: key '{key}' must be a list, got {value!r}")
        (inner, *_rest) = typing.get_args(tp)
        return tuple(check_value(v, inner, where, key) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}' must be a mapping, got {value!r}")
        _, vt = typing.get_args(tp)
        return {str(k): check_value(v, vt, where, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: key '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: key '{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: key '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: key '{key}' must be a string, got {value!r}")
        return value
    return value


def suggestion(word: str, choices, what: str = "keys") -> str:
    """A close match of ``word`` among ``choices`` as " (did you mean 'x'?)", else the choices themselves when few.

    >>> suggestion("grpo.max_step", ["grpo.max_steps", "grpo.beta"])
    " (did you mean 'grpo.max_steps'?)"
    >>> suggestion("nope", ["cpu", "paper"], "profiles")
    ' (profiles: cpu, paper)'
    """
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" ({what}: {', '.join(choices)})" if len(choices) <= 12 else f" ({len(choices)} {what}; none close)"


def from_dict(cls, data: dict, where: str, prefix: str = ""):
    """Build dataclass ``cls`` from ``data``, strictly."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        full = [prefix + n for n in names]
        raise ConfigError(f"{where}: unknown key '{prefix}{unknown[0]}'" + suggestion(prefix + unknown[0], full))
    kwargs = {k: check_value(v, hints[k], where, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"overrides: key '{key}' goes through a non-mapping")
    node[parts[-1]] = value


def known_keys(cls, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            out += known_keys(tp, prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out
