"""Preflight: before any GPU hour, check that everything a profile's study needs is there, and what it will cost.

``medrl check --profile paper`` (and ``medrl book``, before its first notebook) resolves every model and dataset
the study's arms use (a local folder with its files, or a hub id that is cached or reachable, gated models
accessible with the user's token), the GPUs (count and memory, against the model states of one training process
under ZeRO-2), the free disk (against the checkpoints of one GRPO run) and the packages the profile's settings
call for, and prints one table with a verdict per line. ``medrl launch`` prints the same disk estimate.

Memory and disk are estimated from the policy's parameter count: read from its ``config.json`` (a local folder or
the hub cache) and counted on the meta device, or, for a hub Qwen2-VL-2B not yet downloaded, from its published
architecture (:data:`QWEN2_VL_2B`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from medrl_lib.config import Profile, is_local, resolve_path
from medrl_lib.models.sources import resolve_source
from medrl_lib.ops.memory import GIB, WEIGHT_BYTES, grpo_memory_plan, model_states_per_process, shapes_of

#: Qwen2-VL-2B's architecture as published (text and vision sides), for estimates made before it is downloaded.
QWEN2_VL_2B = {
    "text": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=True,
                 rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
                 max_position_embeddings=32768),
    "vision": dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2),
}

#: Qwen3-VL-2B-Instruct's architecture as published (its Qwen3-1.7B text side, the 24-block vision side of Qwen3-VL's
#: small models with DeepStack taps at blocks 5, 11, 17), for estimates made before it is downloaded.
QWEN3_VL_2B = {
    "text": dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6,
                 rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0, "mrope_section": [24, 20, 20]},
                 max_position_embeddings=262144),
    "vision": dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, out_hidden_size=2048,
                   patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=2304,
                   deepstack_visual_indexes=[5, 11, 17]),
}

#: Bytes per parameter of a full training checkpoint under DeepSpeed with bf16 weights and AdamW: the model's
#: bf16 weights (safetensors, 2), DeepSpeed's bf16 module states (2) and its fp32 master weights with both Adam
#: moments (12).
CHECKPOINT_BYTES_FULL = 2 + 2 + 12
#: A training process whose model states stay under this many GiB can run on a CPU (the rehearsal, the tiny
#: profiles); above it the profile needs GPUs.
CPU_STATES_GIB = 2.0


def qwen2_vl_2b_config():
    """Qwen2-VL-2B's published architecture as a ``Qwen2VLConfig`` (random weights; nothing is downloaded)."""
    from transformers import Qwen2VLConfig

    v = QWEN2_VL_2B["text"]["vocab_size"]
    ids = dict(image_token_id=v - 3, video_token_id=v - 4, vision_start_token_id=v - 2, vision_end_token_id=v - 1)
    return Qwen2VLConfig(text_config=QWEN2_VL_2B["text"], vision_config=QWEN2_VL_2B["vision"],
                         tie_word_embeddings=True, **ids)


def qwen3_vl_2b_config():
    """Qwen3-VL-2B-Instruct's published architecture as a ``Qwen3VLConfig`` (nothing is downloaded)."""
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(text_config=QWEN3_VL_2B["text"], vision_config=QWEN3_VL_2B["vision"],
                         tie_word_embeddings=True)


#: Hub id (without its owner) -> its published architecture, for a policy not yet downloaded.
PUBLISHED = {"Qwen2-VL-2B": (qwen2_vl_2b_config, "Qwen2-VL-2B's published architecture"),
             "Qwen2-VL-2B-Instruct": (qwen2_vl_2b_config, "Qwen2-VL-2B's published architecture"),
             "Qwen3-VL-2B-Instruct": (qwen3_vl_2b_config, "Qwen3-VL-2B-Instruct's published architecture")}


def count_parameters(config) -> int:
    """Parameters of the model ``config`` describes, counted on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    return sum(p.numel() for p in model.parameters())


def policy_config(model_id: str):
    """``(config, where it comes from)`` of the policy ``model_id`` (local folder or hub id): its ``config.json``
    from the folder or the hub cache, else its published architecture (:data:`PUBLISHED`; nothing is downloaded)."""
    from transformers import AutoConfig

    source = resolve_source(model_id)
    if Path(source).is_dir():
        return AutoConfig.from_pretrained(source), f"{source}/config.json"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source, "config.json")
    if isinstance(cached, str):
        return AutoConfig.from_pretrained(str(Path(cached).parent)), "hub cache config.json"
    if source.rsplit("/", 1)[-1] in PUBLISHED:
        make, where = PUBLISHED[source.rsplit("/", 1)[-1]]
        return make(), where
    raise FileNotFoundError(f"{model_id}: no local folder and no cached config.json to count its parameters")


def policy_parameters(model_id: str) -> tuple[int, str]:
    """``(parameters, where the count comes from)`` of the policy ``model_id`` (local folder or hub id)."""
    config, source = policy_config(model_id)
    return count_parameters(config), source


@dataclass
class DiskEstimate:
    """Disk one GRPO run of a profile needs, in bytes."""

    parameters: int
    """parameters of the policy"""
    checkpoint: int
    """one checkpoint (full state, or the weights only with ``grpo.save_only_model``)"""
    checkpoints_at_peak: int
    """checkpoints on disk at once: ``save_total_limit`` plus the one being written (all of them when 0)"""
    final_model: int
    """the kept final model (``grpo.keep_final_model``), else 0"""

    @property
    def peak(self) -> int:
        """Bytes at the worst moment of the run."""
        return self.checkpoint * self.checkpoints_at_peak + self.final_model

    def lines(self) -> list[str]:
        return [f"policy parameters: {self.parameters / 1e9:.3f} B",
                f"one checkpoint: {self.checkpoint / GIB:.1f} GiB; at most {self.checkpoints_at_peak} on disk at once",
                f"final model kept: {self.final_model / GIB:.1f} GiB",
                f"disk per GRPO run at its peak: {self.peak / GIB:.1f} GiB"]


def disk_estimate(profile: Profile, parameters: int) -> DiskEstimate:
    """What one GRPO run of ``profile`` writes at its peak, for a policy of ``parameters`` parameters.

    >>> from medrl_lib.config import load_profile
    >>> e = disk_estimate(load_profile("paper"), 2_000_000_000)
    >>> e.checkpoint / 1e9, e.checkpoints_at_peak, e.final_model / 1e9, e.peak / 1e9
    (32.0, 2, 4.0, 68.0)
    """
    g, dtype = profile.grpo, profile.model.dtype
    saves = g.max_steps // g.save_steps
    per_param = WEIGHT_BYTES[dtype] if g.save_only_model else CHECKPOINT_BYTES_FULL
    at_peak = min(saves, g.save_total_limit + 1) if g.save_total_limit else saves
    return DiskEstimate(parameters=parameters, checkpoint=parameters * per_param, checkpoints_at_peak=at_peak,
                        final_model=parameters * WEIGHT_BYTES[dtype] if g.keep_final_model else 0)


@dataclass
class Check:
    """One line of the preflight table."""

    what: str
    needs: str
    found: str
    verdict: str  # "ok", "warn" or "FAIL"
    details: tuple[str, ...] = ()
    """lines printed under the table (the memory plan)"""


def study_models(profile_name: str, overrides: dict | None = None) -> list[tuple[str, str]]:
    """``(role, model id)`` of every model the study's arms of ``profile_name`` load, without repeats."""
    from medrl_lib.experiments import study

    seen: dict[str, str] = {}
    for arm in study.applicable(profile_name, list(study.ARMS), overrides):
        p = study.arm_profile(profile_name, arm, overrides)
        m, g, e = p.model, p.grpo, p.eval
        wanted = [("policy (instruct)", m.instruct)]
        if p.model.init == "base":
            wanted.append(("policy (base)", m.base))
        if "semantic_reward" in g.reward_weights and g.semantic_judge != "oracle":
            wanted.append(("semantic judge", g.semantic_judge))
        for role, mid in (("similarity", e.similarity), ("perplexity", e.perplexity), ("thinking reward", e.thinking)):
            if mid not in ("none", "minilm", "reference-lm", "oracle"):
                wanted.append((role, mid))
        if m.kind == "tiny":
            wanted = [w for w in wanted if not w[0].startswith("policy")]
        for role, mid in wanted:
            if mid not in seen:
                seen[mid] = role
            elif role not in seen[mid]:
                seen[mid] += f", {role}"
    return [(role, mid) for mid, role in seen.items()]


def study_datasets(profile_name: str, overrides: dict | None = None) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(name, local path or hub id, files needed)`` of every dataset the study reads."""
    from medrl_lib.experiments import study
    from medrl_lib.data import huatuo, pmc_vqa

    out = {}
    for group in ("zhu", "ood"):
        p = study.arm_profile(profile_name, "grpo-instruct" if group == "zhu" else "ood-grpo", overrides)
        d = p.data
        if d.source == "pmc-vqa":
            out["PMC-VQA"] = (d.pmc_vqa_path or pmc_vqa.HUB_ID, ("train_2.csv", "test_2.csv", "images_2.zip"))
        elif d.source == "huatuo-eval":
            out["HuatuoGPT-Vision eval"] = (d.huatuo_path or huatuo.HUB_ID, (huatuo.JSON_FILE, huatuo.IMAGE_ARCHIVE))
    return [(name, src, files) for name, (src, files) in out.items()]


def _hub_error(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "GatedRepoError":
        return "gated: accept its terms on the hub with your account and log in (hf auth login) or set HF_TOKEN"
    if name == "RepositoryNotFoundError":
        return "not found on the hub (or private without access)"
    return f"hub unreachable ({name}: {str(exc).splitlines()[0][:80]})"


def _hub_check(what: str, needs: str, repo: str, files: tuple[str, ...], repo_type: str = "model") -> Check:
    """A hub repository whose ``files`` are cached, or that is reachable and, if gated, accessible."""
    from huggingface_hub import auth_check, try_to_load_from_cache

    if all(isinstance(try_to_load_from_cache(repo, f, repo_type=repo_type), str) for f in files):
        return Check(what, needs, "in the hub cache", "ok")
    if os.environ.get("HF_HUB_OFFLINE", "0").upper() in ("1", "ON", "YES", "TRUE"):
        return Check(what, needs, "not cached, and HF_HUB_OFFLINE is set", "FAIL")
    try:
        auth_check(repo, repo_type=repo_type)
    except Exception as exc:  # noqa: BLE001 - every failure is reported on its line
        return Check(what, needs, _hub_error(exc), "FAIL")
    return Check(what, needs, "reachable on the hub (downloaded at first use)", "ok")


def check_model(role: str, model_id: str) -> Check:
    """A local model folder holds ``config.json``; a hub id is cached or reachable and, if gated, accessible."""
    if not is_local(model_id):
        return _hub_check(f"model {model_id}", role, model_id, ("config.json",))
    path = Path(resolve_source(model_id))
    ok = (path / "config.json").is_file()
    found = "local folder" if ok else "local folder without config.json" if path.is_dir() else "local folder missing"
    return Check(f"model {model_id}", role, found, "ok" if ok else "FAIL")


def check_dataset(name: str, source: str, files: tuple[str, ...]) -> Check:
    """A local dataset folder (or file) holds its files; a hub dataset has them cached or is reachable."""
    if not is_local(source):
        return _hub_check(f"data {name}", source, source, files, repo_type="dataset")
    path = Path(resolve_source(source))
    if path.is_file():
        return Check(f"data {name}", source, "local file", "ok")
    missing = [f for f in files if not (path / f).exists() and not (path / Path(f).stem).exists()]
    found = "local folder" if path.is_dir() and not missing else (
        f"local folder without {', '.join(missing)}" if path.is_dir() else "local path missing")
    return Check(f"data {name}", source, found, "ok" if found == "local folder" else "FAIL")


def gpus() -> list[tuple[str, int]]:
    """``(name, total memory in bytes)`` of each visible GPU."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [(torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory)
            for i in range(torch.cuda.device_count())]


def check_gpus(profile: Profile, parameters: int | None, found: list[tuple[str, int]]) -> Check:
    """Enough GPUs for ``num_processes`` training processes, each with memory for its model states."""
    n = profile.num_processes
    if parameters is None:
        return Check("GPUs", f"{n} (memory unknown: policy not found)", f"{len(found)}", "FAIL")
    states = model_states_per_process(profile, parameters)
    needs = f"{n} with > {states / GIB:.1f} GiB each (model states under ZeRO-2, before activations)"
    have = ", ".join(f"{name} {mem / GIB:.0f} GiB" for name, mem in found) or "none"
    if states / GIB < CPU_STATES_GIB and not found:
        return Check("GPUs", f"none ({states / GIB:.2f} GiB of model states per process)",
                     f"none: {n} CPU process(es)", "ok")
    if len(found) < n:
        return Check("GPUs", needs, have, "FAIL")
    small = [name for name, mem in found[:n] if mem < states * 1.25]
    return Check("GPUs", needs, have, "FAIL" if small else "ok")


#: The memory of an "80 GB" card as CUDA reports it (A100 and H100 80GB: about 79.2 GiB): the card the memory plan is
#: checked against where no GPU is visible.
REFERENCE_CARD = int(79.2 * 1024 ** 3)

#: The oldest NVIDIA Linux driver each CUDA major release runs on (NVIDIA's CUDA release notes, table 3): the pinned
#: torch 2.13.0 and vllm 0.27.1 are CUDA 13 builds.
CUDA_DRIVER_MIN = {13: "580.65.06", 12: "525.60.13"}


def driver_version() -> str | None:
    """The NVIDIA driver's version (``/proc/driver/nvidia/version``, else ``nvidia-smi``), or None without one."""
    import re
    import subprocess

    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        found = re.search(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
        if found:
            return found.group(1)
    except OSError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def _version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def check_driver(profile: Profile, found: list[tuple[str, int]], *, cuda: str | None = None,
                 driver: str | None = None) -> Check | None:
    """The NVIDIA driver against what the installed torch's CUDA needs (``cuda``, ``driver``: stand for what the
    machine has, for tests), and, where a GPU profile sees no GPU, the likely reasons. None where it does not
    apply (a CPU build of torch on a profile that runs on CPUs)."""
    import torch

    cuda = cuda if cuda is not None else torch.version.cuda
    needs_gpu = profile.model.kind == "hub" and profile.num_processes > 0 and not _is_cpu_sized(profile)
    if cuda is None:
        if needs_gpu:
            return Check("CUDA driver", "a CUDA build of torch", f"torch {torch.__version__} is a CPU build", "FAIL")
        return None
    major = int(cuda.split(".")[0])
    minimum = CUDA_DRIVER_MIN.get(major)
    driver = driver if driver is not None else driver_version()
    needs = f">= {minimum} (torch's CUDA {cuda})" if minimum else f"CUDA {cuda}"
    if driver is None:
        why = ("no NVIDIA driver found (/proc/driver/nvidia/version, nvidia-smi): on a cluster, run on a GPU node "
               "(srun/sbatch with --gpus), not the login node")
        return Check("CUDA driver", needs, why, "FAIL" if needs_gpu else "warn")
    if minimum and _version(driver) < _version(minimum):
        return Check("CUDA driver", needs, f"{driver}: too old for CUDA {major} (torch sees "
                     f"{'no' if not found else len(found)} GPU); ask for a newer driver, or install a torch and vLLM "
                     f"built for the CUDA your driver runs", "FAIL")
    if not found and needs_gpu:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return Check("CUDA driver", needs, f"{driver}, but torch sees no GPU (CUDA_VISIBLE_DEVICES="
                     f"{visible!r}; a job without --gpus, or a GPU held by another process in exclusive mode)", "FAIL")
    return Check("CUDA driver", needs, driver, "ok")


def _is_cpu_sized(profile: Profile) -> bool:
    """Whether the profile's policy is small enough to train on CPUs (the rehearsal's stand-ins, tiny models)."""
    try:
        parameters, _ = profile_parameters(profile)
    except (OSError, ValueError):
        return False
    return model_states_per_process(profile, parameters) / GIB < CPU_STATES_GIB


def check_memory(profile_name: str, overrides: dict | None, found: list[tuple[str, int]]) -> Check:
    """Peak memory of one GRPO training process (:func:`medrl_lib.ops.memory.grpo_memory_plan`) of the study's most
    demanding GRPO arm, against the smallest GPU it would run on; the plan's lines are its details."""
    from medrl_lib.experiments import study

    plans = []
    for arm, (method, *_rest) in study.ARMS.items():
        if method != "grpo" or study.not_applicable(profile_name, arm, overrides):
            continue
        p = study.arm_profile(profile_name, arm, overrides)
        config, _ = profile_config(p)
        parameters = count_parameters(config)
        device = min((mem for _, mem in found[:p.num_processes]), default=REFERENCE_CARD)
        plans.append((grpo_memory_plan(p, parameters, shapes_of(config), device), arm, p, parameters))
    plan, arm, p, parameters = max(plans, key=lambda t: t[0].peak)
    lines = (f"memory plan of one GRPO process ({arm}, the study's largest):", *("  " + x for x in plan.lines()))
    needs = f"{plan.peak / GIB:.1f} GiB per process ({arm}, at the token and pixel limits)"
    if not found:
        cpu = model_states_per_process(p, parameters) / GIB < CPU_STATES_GIB
        room = f"no GPU; on an 80 GB card: room {plan.room / GIB:+.1f} GiB" + (" (CPU processes here)" if cpu else "")
        return Check("GPU memory", needs, room, "ok" if cpu or plan.fits else "FAIL", lines)
    verdict = "ok" if plan.fits else "FAIL"
    room = f"room {plan.room / GIB:+.1f} GiB on the smallest card"
    hint = "" if plan.fits else ": set grpo.gradient_checkpointing, lower vllm_gpu_memory_utilization or the limits"
    return Check("GPU memory", needs, room + hint, verdict, lines)


def check_disk(profile: Profile, estimate: DiskEstimate | None) -> Check:
    """Free disk where the results go, against one GRPO run's peak."""
    folder = resolve_path(profile.results_dir)
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if estimate is None:
        return Check("disk", "unknown (policy not found)", f"{free / GIB:.0f} GiB free at {probe}", "warn")
    return Check("disk", f"{estimate.peak / GIB:.1f} GiB per GRPO run", f"{free / GIB:.0f} GiB free at {probe}",
                 "ok" if free > estimate.peak else "FAIL")


def check_packages(profile: Profile, model_ids: list[str]) -> list[Check]:
    """Packages the profile's settings call for."""
    out = []
    if profile.num_processes > 1:
        ok = importlib.util.find_spec("deepspeed") is not None
        out.append(Check("package deepspeed", "num_processes > 1 (ZeRO-2)", "installed" if ok else "missing",
                         "ok" if ok else "FAIL"))
    if any("biogpt" in m.lower() for m in model_ids):
        ok = importlib.util.find_spec("sacremoses") is not None
        out.append(Check("package sacremoses", "BioGptTokenizer", "installed" if ok else "missing", "ok" if ok else "FAIL"))
    if profile.model.attn_implementation == "flash_attention_2":
        ok = importlib.util.find_spec("flash_attn") is not None
        out.append(Check("package flash_attn", "model.attn_implementation: flash_attention_2",
                         "installed" if ok else "missing: attention falls back to sdpa (stored with each run)",
                         "ok" if ok else "warn"))
    return out


def run_checks(profile_name: str, overrides: dict | None = None, *, found_gpus=None) -> list[Check]:
    """Every check of the study of ``profile_name``, in table order."""
    from medrl_lib.config import load_profile

    profile = load_profile(profile_name, overrides)
    models = study_models(profile_name, overrides)
    checks = [check_model(role, mid) for role, mid in models]
    checks += [check_dataset(name, src, files) for name, src, files in study_datasets(profile_name, overrides)]
    try:
        parameters, _ = profile_parameters(profile)
    except (OSError, ValueError):
        parameters = None
    found = gpus() if found_gpus is None else found_gpus
    checks.append(check_gpus(profile, parameters, found))
    driver = check_driver(profile, found)
    if driver is not None:
        checks.append(driver)
    if parameters is not None and profile.model.kind == "hub":
        checks.append(check_memory(profile_name, overrides, found))
    checks.append(check_disk(profile, disk_estimate(profile, parameters) if parameters else None))
    checks += check_packages(profile, [mid for _, mid in models])
    return checks


def profile_config(profile: Profile):
    """``(config, where it comes from)`` of the profile's policy: :func:`policy_config` for hub models; for the tiny
    model, its architecture settings (the vocabulary at its target size)."""
    if profile.model.kind == "hub":
        return policy_config(profile.model.instruct)
    from medrl_lib.models.loading import SPECIAL_TOKENS, tiny_config

    ids = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    return tiny_config(profile.model.tiny, profile.model.tiny.vocab_size, ids), "model.tiny"


def profile_parameters(profile: Profile) -> tuple[int, str]:
    """``(parameters, where the count comes from)`` of the profile's policy, counted on the meta device."""
    config, source = profile_config(profile)
    return count_parameters(config), source



def format_table(checks: list[Check]) -> str:
    """The checks as a fixed-width table with a closing verdict line."""
    from medrl_lib.common.console import text_table

    rows = [["check", "needs", "found", "verdict"]] + [[c.what, c.needs, c.found, c.verdict] for c in checks]
    lines = text_table(rows, max_width=60)
    failed = [c for c in checks if c.verdict == "FAIL"]
    for c in checks:
        lines += ["", *c.details] if c.details else []
    lines.append("")
    lines.append(f"preflight: {len(failed)} check(s) failed: " + "; ".join(c.what for c in failed) if failed
                 else "preflight: every check passed")
    return "\n".join(lines)


def passed(checks: list[Check]) -> bool:
    return not any(c.verdict == "FAIL" for c in checks)


def needs_hub(profile: Profile) -> bool:
    """Whether any model id or dataset of ``profile`` is a hub id (else the study runs offline)."""
    m, g, e, d = profile.model, profile.grpo, profile.eval, profile.data
    ids = [g.semantic_judge, e.similarity, e.perplexity, e.thinking]
    if m.kind == "hub":
        ids += [m.base, m.instruct]
    keywords = ("none", "minilm", "reference-lm", "oracle")
    if any(i not in keywords and not is_local(i) for i in ids):
        return True
    if d.source != "synthetic" and not (is_local(d.pmc_vqa_path) and is_local(d.huatuo_path)):
        return True
    return False


def as_json(checks: list[Check]) -> str:
    return json.dumps([c.__dict__ for c in checks], indent=1)
