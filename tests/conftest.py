"""Shared fixtures: a session-wide smoke-profile model cache and results store in a temp folder."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

# tests/vllm run the real vLLM engine in the rehearsal's vLLM environment (make test-vllm), never in this one
collect_ignore = [] if os.environ.get("MEDRL_VLLM_TESTS") else ["vllm"]


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


@pytest.fixture(scope="session")
def smoke_book(smoke_dirs, tmp_path_factory):
    """The whole book built by ``medrl book --profile smoke`` into a copy of the book sources."""
    from medrl_lib.cli.main import main

    cache, results = smoke_dirs
    book = tmp_path_factory.mktemp("book") / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    assert main(["book", "--profile", "smoke", "--results-dir", str(results), "--cache-dir", str(cache),
                 "--book-dir", str(book)]) == 0
    return book, results
