"""Layer 3, data: datasets in one common schema (see :mod:`medrl_lib.data.schema`): the synthetic radiology items,
PMC-VQA, the HuatuoGPT-Vision evaluation file and the transfer panel, the rehearsal's fixtures in the hubs' layouts,
the splits of a profile (:mod:`.splits`), and the published identifiers of MedVLM-R1's test items
(:func:`medvlm_r1_test_items`). Imports common, the RL core and config."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

__all__ = ["MEDVLM_R1_TEST_FILE", "medvlm_r1_test_items", "medvlm_r1_test_source"]

MEDVLM_R1_TEST_FILE = "medvlm_r1_test.json"
"""The package file that holds the identifiers of MedVLM-R1's 900 test items (see :func:`medvlm_r1_test_items`)."""


@functools.lru_cache(maxsize=1)
def _medvlm_r1_test() -> dict[str, Any]:
    text = resources.files(__name__).joinpath(MEDVLM_R1_TEST_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def medvlm_r1_test_items(per_modality: int | None = None) -> list[dict[str, Any]]:
    """The 900 test items of MedVLM-R1 (Pan et al. 2025), as published, in the published order; with
    ``per_modality``, the first ``per_modality`` of each modality (the paper profile's 300 keeps all 900).

    The source is ``MRI_CT_XRAY_300each_dataset.json`` of the repository ``JZPeterPan/MedVLM-R1`` (commit
    ``2eee4210b25b149dcfa68513eb4682ac63b029d2``; :func:`medvlm_r1_test_source` gives the details): items 0-299
    are MRI, 300-599 CT and 600-899 X-ray, all OmniMedVQA items of the HuatuoGPT-Vision evaluation data. Only
    identifiers are shipped, one dict per item: ``index`` (the position in the published list), ``image`` (the
    image path as published, ``"images/<name>"``), ``question`` (verbatim) and ``modality`` (``"MRI"``,
    ``"CT"`` or ``"X-ray"``, mapped from the published ``subset``). No options, answers or images: the rows are
    found in the loaded data by :func:`medrl_lib.data.splits.medvlm_r1_published_split`. A fresh list of fresh
    dicts is returned on each call.

    >>> items = medvlm_r1_test_items()
    >>> len(items), items[0]["modality"], items[300]["modality"], items[899]["modality"]
    (900, 'MRI', 'CT', 'X-ray')
    >>> sorted(items[0])
    ['image', 'index', 'modality', 'question']
    >>> [(i["index"], i["modality"]) for i in medvlm_r1_test_items(1)]
    [(0, 'MRI'), (300, 'CT'), (600, 'X-ray')]
    """
    items = [dict(item) for item in _medvlm_r1_test()["items"]]
    if per_modality is None:
        return items
    counts: dict[str, int] = {}
    kept = []
    for item in items:
        counts[item["modality"]] = counts.get(item["modality"], 0) + 1
        if counts[item["modality"]] <= per_modality:
            kept.append(item)
    return kept


def medvlm_r1_test_source() -> dict[str, Any]:
    """Where the items of :func:`medvlm_r1_test_items` come from: ``repository``, ``file``, ``commit``,
    ``git_blob``, ``sha256`` (of the published file), ``license``, the fields and their order.

    >>> src = medvlm_r1_test_source()
    >>> src["repository"], src["file"], src["commit"][:7]
    ('https://github.com/JZPeterPan/MedVLM-R1', 'MRI_CT_XRAY_300each_dataset.json', '2eee421')
    """
    return json.loads(json.dumps(_medvlm_r1_test()["source"]))
