"""Arguments every ``medrl`` command shares: ``--profile``, ``--overrides`` (dotted-key settings as JSON), the results
store and the model cache, whole numbers of at least 1, and the hub environment of a profile."""

from __future__ import annotations

import argparse
from pathlib import Path


def hub_environment(profile_name: str, overrides: dict | None = None) -> dict[str, str]:
    """Environment for a profile's notebooks: offline (``HF_HUB_OFFLINE=1``) when it needs nothing from the hub.

    >>> hub_environment("cpu"), hub_environment("paper")
    ({'HF_HUB_OFFLINE': '1'}, {})
    """
    from medrl_lib.config import load_profile
    from medrl_lib.ops.preflight import needs_hub

    return {} if needs_hub(load_profile(profile_name, overrides)) else {"HF_HUB_OFFLINE": "1"}


def parse_overrides(text: str) -> dict:
    """``--overrides``: a JSON object of dotted-key settings; anything else is an ``argparse.ArgumentTypeError``
    naming the option and what is allowed.

    >>> parse_overrides('{"num_processes": 1}')
    {'num_processes': 1}
    """
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--overrides is not JSON ({exc.msg} at character {exc.pos}): give an "
                                         """object of dotted-key settings, e.g. '{"num_processes": 1}'""") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--overrides must be a JSON object of dotted-key settings, got "
                                         f"{type(value).__name__}")
    return value


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1.

    >>> positive("4")
    4
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--profile`` (default cpu), ``--overrides``, ``--results-dir`` and ``--cache-dir``."""
    profile_arguments(parser, "cpu")
    parser.add_argument("--results-dir", help="results store (default: the profile's results_dir)")
    parser.add_argument("--cache-dir", help="model cache (default: the profile's cache_dir)")


def profile_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """``--profile`` (default ``default``) and ``--overrides`` (a JSON object of dotted-key settings)."""
    parser.add_argument("--profile", default=default)
    parser.add_argument("--overrides", default="{}", help="JSON object of dotted-key settings")


def store_overrides(args) -> dict:
    """``--overrides`` with ``--results-dir`` and ``--cache-dir`` applied (absolute: jobs start elsewhere)."""
    overrides = parse_overrides(args.overrides)
    if getattr(args, "results_dir", None):
        overrides["results_dir"] = str(Path(args.results_dir).resolve())
    if getattr(args, "cache_dir", None):
        overrides["cache_dir"] = str(Path(args.cache_dir).resolve())
    return overrides
