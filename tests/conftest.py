"""Shared fixtures: a session-wide smoke-profile model cache and results store in a temp folder."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def smoke_dirs(tmp_path_factory):
    """(cache_dir, results_dir) shared by the tests that build smoke-profile models and runs."""
    root = tmp_path_factory.mktemp("smoke")
    return root / "cache", root / "results"


@pytest.fixture(scope="session")
def smoke_profile(smoke_dirs):
    from medrl_lib.config import load_profile

    cache, results = smoke_dirs
    return load_profile("smoke", overrides={"cache_dir": str(cache), "results_dir": str(results)})
