"""The transfer panel: the HuatuoGPT loader keeping every benchmark, the synthetic panel, the capped draw, panel scores
stored beside a run (outside its key), and the Transfer chapter's computed differences and paragraph."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from medrl_lib.data import fixtures, huatuo
from medrl_lib.data.panel import SYNTHETIC_BENCHMARKS, draw_panel, synthetic_panel
from medrl_lib.data.schema import DataError, OTHER_MODALITY
from medrl_lib.experiments import transfer


@pytest.fixture(scope="module")
def huatuo_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("huatuo")
    planted = fixtures.write_huatuo_eval(folder, n_train_mri=2, n_test_per_modality=1, spare=0, panel_items=2)
    return folder, planted


def test_the_panel_load_keeps_every_benchmark_with_its_name(huatuo_file):
    folder, planted = huatuo_file
    with pytest.warns(UserWarning):
        ds = huatuo.load_huatuo_panel(str(folder))
    counts = {b: ds["benchmark"].count(b) for b in set(ds["benchmark"])}
    # every planted panel benchmark's closed items are kept; OmniMedVQA adds its three papers' subsets
    for name, n in planted["panel_rows"].items():
        assert counts[name] >= n, name
    assert counts["VQA-RAD_test"] == 2 and counts["MMMU_Medical_Validation"] == 2  # the open MMMU question is not
    summary = json.loads(ds.info.description)
    assert summary["dropped"]["open_question"] == planted["malformed"]["open_question"] + 1
    rows = {b: [r for r, bb in zip(ds, ds["benchmark"]) if bb == b] for b in ("VQA-RAD_test", "PMC-VQA_test", "SLAKE_test")}
    # the published quirks survive as data: yes/no options, an empty subset read as 'other', trailing periods
    assert all(r["options"] == ["yes", "no"] and r["modality"] == OTHER_MODALITY for r in rows["VQA-RAD_test"])
    assert all(r["options"] == ["Yes", "No"] for r in rows["SLAKE_test"])
    assert all(o.endswith(".") for r in rows["PMC-VQA_test"] for o in r["options"])


def test_the_default_load_still_drops_the_other_benchmarks(huatuo_file):
    folder, planted = huatuo_file
    with pytest.warns(UserWarning):
        ds = huatuo.load_huatuo_eval(str(folder))
    assert set(ds["source"]) == {"huatuo/omnimedvqa"} and OTHER_MODALITY not in ds["modality"]
    assert json.loads(ds.info.description)["dropped"] == planted["malformed"]


@pytest.mark.parametrize("name", list(SYNTHETIC_BENCHMARKS))
def test_synthetic_benchmarks_are_deterministic_and_answerable(name):
    a = synthetic_panel([name], 6, seed=3)
    b = synthetic_panel([name], 6, seed=3)
    assert a["id"] == b["id"] and a["question"] == b["question"] and a["answer"] == b["answer"]
    assert set(a["benchmark"]) == {name} and set(a["modality"]) == {"MRI", "CT", "X-ray"}
    for row in a:
        facts = json.loads(row["facts"])
        gold = row["options"][ord(row["answer"]) - 65]
        if name == "synthetic-yes-no":  # the answer follows the drawn image's lesion
            assert gold == ("yes" if facts["asked_quadrant"] == facts["lesions"][0]["quadrant"] else "no")
        elif facts["question_type"] == "location":
            assert gold == facts["lesions"][0]["quadrant"]


def test_low_contrast_images_have_less_contrast_than_the_training_style():
    plain = synthetic_panel(["synthetic-reworded"], 6, seed=0)
    low = synthetic_panel(["synthetic-low-contrast"], 6, seed=0)
    spread = [np.asarray(r["image"].convert("L"), dtype=float).std() for r in (*plain, *low)]
    assert np.mean(spread[6:]) < 0.75 * np.mean(spread[:6])


def test_an_unknown_benchmark_is_named():
    with pytest.raises(DataError, match="'synthetic-nope' is not a synthetic benchmark"):
        synthetic_panel(["synthetic-nope"], 2)
    ds = synthetic_panel(["synthetic-yes-no"], 2)
    with pytest.raises(DataError, match="'VQA-RAD_test' has no closed-form item.*synthetic-yes-no"):
        draw_panel(ds, ["VQA-RAD_test"], 2)


def test_the_draw_caps_each_benchmark_with_its_seed():
    ds = synthetic_panel(["synthetic-yes-no", "synthetic-reworded"], 10)
    drawn = draw_panel(ds, ["synthetic-reworded", "synthetic-yes-no"], 4, seed=1)
    assert drawn["benchmark"] == ["synthetic-reworded"] * 4 + ["synthetic-yes-no"] * 4
    assert drawn["id"] == draw_panel(ds, ["synthetic-reworded", "synthetic-yes-no"], 4, seed=1)["id"]
    assert drawn["id"] != draw_panel(ds, ["synthetic-reworded", "synthetic-yes-no"], 4, seed=2)["id"]
    assert len(draw_panel(ds, ["synthetic-yes-no"], 50)) == 10  # fewer than the cap: whole


def _runs(correct_per_seed, benchmark="b"):
    return [SimpleNamespace(records=[{"id": str(i), "correct": c, "benchmark": benchmark} for i, c in enumerate(seed)],
                            metrics={}) for seed in correct_per_seed]


@pytest.mark.parametrize("a, b, verdict", [
    ([[1] * 80 + [0] * 20] * 3, [[1] * 40 + [0] * 60], "holds"),         # far above a one-run start: holds
    ([[1] * 40 + [0] * 60] * 3, [[1] * 80 + [0] * 20] * 3, "reversed"),  # far below: reversed
    ([[1] * 50 + [0] * 50] * 3, [[1] * 50 + [0] * 50] * 3, "inconclusive"),  # equal: not shown
])
def test_differences_are_computed_on_shared_items(a, b, verdict):
    d = transfer.difference(_runs(a), _runs(b), "b")
    assert d["verdict"] == verdict and d["items"] == 100
    assert d["diff"] == pytest.approx(np.mean(a) * 100 - np.mean(b) * 100)


def test_the_paragraph_says_where_a_ranking_holds():
    good, bad = [[1] * 90 + [0] * 10] * 2, [[1] * 20 + [0] * 80] * 2
    panel = {"zhu/grpo-instruct": _runs(good, "x") + [], "zhu/sft": _runs(bad, "x"),
             "zhu/dr-grpo": _runs(bad, "x"), "zhu/grpo-base": _runs(good, "x")}
    rankings = transfer.rankings_frame(panel, ["x"])
    assert list(rankings["verdict"]) == ["holds", "reversed", "not shown"]
    text = transfer.transfer_summary(rankings, synthetic=True)
    assert "Of 3 ranking-by-benchmark tests on the synthetic panel, 1 holds" in text and "1 is reversed" in text
    assert "**Dr.GRPO above GRPO** is reversed on x" in text
