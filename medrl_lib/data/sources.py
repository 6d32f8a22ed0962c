"""Local data paths of a profile, and the rehearsal's data files built on first use.

A data path setting (``data.pmc_vqa_path``, ``data.huatuo_path``) names a hub dataset or a local folder. Local
folders under :data:`REHEARSAL_ROOT` are the rehearsal's stand-ins of the hub files (:mod:`medrl_lib.data.fixtures`:
PMC-VQA's ``train_2.csv``, ``test_2.csv`` and ``images_2.zip``, and the HuatuoGPT-Vision evaluation JSON with
``images.zip``): :func:`resolve_data_source` builds them on first use, once, deterministically, into a temporary
sibling renamed into place. The rehearsal's models are built by :mod:`medrl_lib.models.sources`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medrl_lib.config import is_local, resolve_path

#: Where the rehearsal's parts (models and data files) live, relative to the repository root.
REHEARSAL_ROOT = ".cache/medrl/rehearsal"

#: Sizes of the rehearsal's data files (the profile's item counts must fit in what survives the loaders).
PMC_VQA_PER_MODALITY = 12
HUATUO_SIZES = dict(n_train_mri=8, n_test_per_modality=4, spare=2, panel_items=3)

#: The version of the rehearsal's data files: a data folder built with another is built again (2: the HuatuoGPT-Vision
#: file gained the panel's benchmarks).
DATA_VERSION = 2
_MARKER = "medrl_rehearsal.json"


def resolve_data_source(source: str) -> str:
    """A data path setting as the loaders take it: a local path (relative to the repository root, so that notebooks,
    which run in ``notebooks/``, find it) made absolute, a rehearsal data folder built if missing; hub ids and
    keywords unchanged.

    >>> resolve_data_source("flaitenberger/PMC-VQA")
    'flaitenberger/PMC-VQA'
    """
    if not is_local(source):
        return source
    path = resolve_path(str(Path(source).expanduser()))
    ensure_data_part(path, resolve_path(REHEARSAL_ROOT))
    return str(path)


def ensure_data_part(path: str | Path, root: str | Path) -> None:
    """Build the rehearsal data folder that ``path`` names (under ``root``, the absolute :data:`REHEARSAL_ROOT`) if it
    is missing or was built by an older :data:`DATA_VERSION`; any other path is left alone."""
    path, base = Path(path), Path(root)
    try:
        rel = path.resolve().relative_to(base.resolve())
    except ValueError:
        return
    if len(rel.parts) < 2 or rel.parts[0] != "data":
        return
    data = base / "data" / rel.parts[1]
    if data.exists() and not _current(data):
        shutil.rmtree(data, ignore_errors=True)  # built by an older fixture: built again
    if path.exists():
        return
    if rel.parts[1] == "pmc-vqa":
        _build_atomic(data, "pmc")
    elif rel.parts[1] == "huatuo":
        _build_atomic(data, "huatuo")


def _current(folder: Path) -> bool:
    """Whether the data folder was built with this :data:`DATA_VERSION`."""
    try:
        return json.loads((folder / _MARKER).read_text()).get("version") == DATA_VERSION
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def _build_atomic(folder: Path, which: str) -> None:
    """Write a data folder into a temporary sibling, then rename it into place."""
    from medrl_lib.data import fixtures

    if folder.exists():
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if which == "pmc":
        fixtures.write_pmc_vqa(tmp, n_per_modality=PMC_VQA_PER_MODALITY, seed=0)
    else:
        from medrl_lib.data import medvlm_r1_test_items

        # the published test items' identifiers (the first of each modality) with stand-in images and options
        fixtures.write_huatuo_eval(tmp, seed=0, published=medvlm_r1_test_items(HUATUO_SIZES["n_test_per_modality"]),
                                   **HUATUO_SIZES)
    (tmp / _MARKER).write_text(json.dumps({"version": DATA_VERSION}))
    try:
        tmp.rename(folder)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
