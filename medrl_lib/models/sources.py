"""Model ids and local paths of a profile, and the rehearsal's stand-in models built on first use.

A model setting (``model.base``, ``model.instruct``, ``grpo.semantic_judge``, ``eval.similarity``, ...) names a hub
id or a local folder. Local folders under :data:`medrl_lib.data.sources.REHEARSAL_ROOT` are the rehearsal's parts:
its models (:func:`medrl_lib.models.hub_standins.build_hub_standins`: small stand-ins of Qwen2-VL-2B(-Instruct),
BioGPT, a cross-encoder and a Mistral judge; :func:`medrl_lib.models.family_standins.build_family_standins`:
Qwen2.5-VL and Qwen3-VL) and its data files (:mod:`medrl_lib.data.sources`). :func:`resolve_source` builds the
part a path names on first use, once, deterministically.
"""

from __future__ import annotations

from pathlib import Path

from medrl_lib.config import is_local, resolve_path
from medrl_lib.data.sources import REHEARSAL_ROOT, ensure_data_part


def resolve_source(source: str) -> str:
    """A model id or data path as the loaders take it: a local path (relative to the repository root, so that
    notebooks, which run in ``notebooks/``, find it) made absolute; hub ids and keywords unchanged. Local parts of
    the rehearsal are built on first use (:func:`ensure_part`).

    >>> resolve_source("Qwen/Qwen2-VL-2B-Instruct"), resolve_source("oracle")
    ('Qwen/Qwen2-VL-2B-Instruct', 'oracle')
    """
    if not is_local(source):
        return source
    path = resolve_path(str(Path(source).expanduser()))
    ensure_part(path, resolve_path(REHEARSAL_ROOT))
    return str(path)


def ensure_part(path: str | Path, root: str | Path) -> None:
    """Build the rehearsal part that ``path`` names (a model folder or a data folder under ``root``, the absolute
    rehearsal root) if it is missing; any other path is left alone."""
    path, base = Path(path), Path(root)
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        return
    if not rel.parts:
        return
    if rel.parts[0] == "data":
        ensure_data_part(path, base)
        return
    if path.exists() or rel.parts[0] != "models":
        return
    from medrl_lib.models.family_standins import FAMILY_IDS, build_family_standins
    from medrl_lib.models.hub_standins import build_hub_standins

    if len(rel.parts) > 1 and rel.parts[1] in {h.split("/", 1)[1] for h in FAMILY_IDS}:
        build_family_standins(base / "models")
    else:
        build_hub_standins(base / "models")
