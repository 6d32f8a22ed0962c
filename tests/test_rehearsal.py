"""The rehearsal: the paper profile with smaller parts, end to end on this CPU.

The rehearsal profile may differ from the paper profile only in model ids, data paths, sizes and the number
of processes (checked for every arm), and it goes down the paper's code branches: hub-layout stand-ins (never the
tiny-model branch), data files in the published layouts with malformed rows, 2 processes through accelerate +
DeepSpeed ZeRO-2 over gloo, the preflight and every notebook through papermill (``medrl book --profile rehearsal
--no-build``, about 3 minutes on 2 cores).
"""

import json
import shutil
from pathlib import Path

import pytest

from medrl_lib.config import load_profile, resolve_path
from medrl_lib.experiments import study
from medrl_lib.models import sources
from medrl_lib.ops import rehearsal

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("arm", sorted(study.ARMS))
def test_rehearsal_is_the_paper_profile_with_smaller_parts(arm):
    paper = study.arm_profile("paper", arm).to_dict()
    small = study.arm_profile("rehearsal", arm).to_dict()
    assert rehearsal.drift(paper, small) == {}
    # and it is smaller where it may differ
    assert small["grpo"]["max_steps"] < paper["grpo"]["max_steps"]
    assert small["num_processes"] == 2


def test_drift_is_caught():
    # a setting outside MAY_DIFFER (the KL coefficient) changed in the rehearsal would be reported
    paper = load_profile("paper").to_dict()
    small = load_profile("rehearsal", overrides={"grpo.beta": 0.0}).to_dict()
    assert rehearsal.drift(paper, small) == {"grpo.beta": (0.04, 0.0)}


@pytest.fixture(scope="module")
def parts():
    """Every part of the rehearsal, built once under .cache/medrl/rehearsal (reused by later runs)."""
    return rehearsal.ensure_parts(resolve_path(rehearsal.ROOT))


def test_parts_are_in_the_hub_layouts(parts):
    models = parts["models"]
    instruct, base = models / "Qwen2-VL-2B-Instruct", models / "Qwen2-VL-2B"
    assert not (instruct / "medrl_tiny.json").exists()  # never the tiny-model branch
    assert json.loads((instruct / "config.json").read_text())["model_type"] == "qwen2_vl"
    assert (instruct / "preprocessor_config.json").exists() and (instruct / "generation_config.json").exists()
    assert json.loads((models / "biogpt" / "config.json").read_text())["model_type"] == "biogpt"
    assert (parts["pmc-vqa"] / "train_2.csv").exists() and (parts["pmc-vqa"] / "images_2.zip").exists()
    assert (parts["huatuo"] / "medical_multimodel_evaluation_data.json").exists()


def test_rehearsal_splits_drop_malformed_rows_and_keep_the_sizes(parts):
    from medrl_lib.data.schema import load_summary

    p = load_profile("rehearsal")
    e6 = study.arm_profile("rehearsal", "ood-grpo").data
    zhu_train, zhu_test = study.splits("rehearsal", "zhu")
    ood_train, ood_test = study.splits("rehearsal", "ood")
    assert (len(zhu_train), len(zhu_test)) == (p.data.train_size, p.data.test_size)
    assert (len(ood_train), len(ood_test)) == (e6.train_size, 3 * e6.test_per_modality)
    assert set(ood_train["modality"]) == {"MRI"}
    for ds in (zhu_train, ood_train):
        summary = load_summary(ds)
        assert summary["rows_read"] > summary["rows_kept"] and sum(summary["dropped"].values()) > 0


def test_preflight_passes_on_the_rehearsal(parts, capsys):
    from medrl_lib.cli.main import main

    assert main(["check", "--profile", "rehearsal"]) == 0
    out = capsys.readouterr().out
    assert "preflight: every check passed" in out
    assert "none: 2 CPU process(es)" in out  # stand-ins: model states small enough for CPU processes


@pytest.mark.parametrize("which", ["base", "instruct"])
def test_policies_pad_on_the_left(parts, which):
    # found by the rehearsal: a right-padding tokenizer misaligned TRL's mm_token_type_ids with the prompt ids
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import load_policy

    p = load_profile("rehearsal")
    path = ensure_start_model(p, which)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(path).padding_side == "right"  # as the stand-in (and a hub default) ships
    assert load_policy(p, path)[1].tokenizer.padding_side == "left"


@pytest.mark.parametrize("arm", sorted(study.ARMS))
def test_every_arm_resolves_a_launch(parts, arm):
    from medrl_lib.training.launch import launch_command
    from medrl_lib.training.standins import ensure_start_model
    from medrl_lib.training.train import trains_in_bf16

    p = study.arm_profile("rehearsal", arm)
    policy = ensure_start_model(p)
    assert Path(policy).is_dir() and not (Path(policy) / "medrl_tiny.json").exists()
    method = study.ARMS[arm][0]
    cmd = launch_command("rehearsal", {}, policy, "out", p.num_processes, trains_in_bf16(p, method), method=method)
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("--method") + 1] == method
    assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"  # the paper's bf16, on CPU too


def test_data_chapter_table_counts_the_dropped_rows(parts):
    from medrl_lib.experiments import report

    zhu_train, zhu_test = study.splits("rehearsal", "zhu")
    ood_train, ood_test = study.splits("rehearsal", "ood")
    table = report.loader_table({"Zhu train": zhu_train, "Zhu test": zhu_test, "E6 train": ood_train, "E6 test": ood_test})
    # Zhu: train_2.csv and test_2.csv; E6: both splits of the one JSON file share its column
    assert list(table.columns) == ["train_2.csv", "test_2.csv", "medical_multimodel_evaluation_data.json"]
    assert table.loc["used by"].tolist() == ["Zhu train", "Zhu test", "E6 train, E6 test"]
    for name in table.columns:
        col = table[name]
        assert col["rows read"] - col["rows kept"] == sum(v for k, v in col.items() if k.startswith("dropped: ") and v)


@pytest.mark.slow
def test_the_whole_rehearsal_runs_every_notebook(parts, tmp_path):
    """``medrl book --profile rehearsal --no-build``: the preflight and every notebook through papermill on the
    rehearsal's parts (every arm trained by 2 processes through accelerate + DeepSpeed ZeRO-2 over gloo). The book
    build itself (Sphinx, warnings as errors) runs on the same sources in the smoke books (tests/test_end_to_end.py,
    tests/test_cluster.py); left out here for the time of make test."""
    import nbformat

    from medrl_lib.cli.main import main

    results = tmp_path / "results"
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    assert main(["book", "--profile", "rehearsal", "--results-dir", str(results), "--cache-dir",
                 str(tmp_path / "cache"), "--book-dir", str(book), "--no-build"]) == 0
    for name in sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")):
        cells = nbformat.read(book / "chapters" / f"{name}.ipynb", as_version=4).cells
        outputs = [o for c in cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert outputs and not any(o.get("output_type") == "error" for o in outputs), name
    runs = {p.parent.parent.name: json.loads(p.read_text()) for p in results.glob("rehearsal/*/*/seed*/metrics.json")}
    stored = {study.stored_arm("rehearsal", arm) for arm in study.ARMS}  # E3's +SA is E2's: no length settings here
    assert "grpo-sa-len" not in stored and "grpo-sa-len" not in runs
    assert stored | {"instruct-zero-shot"} <= set(runs)  # every arm of both papers
    for arm in stored:
        m = runs[arm]
        assert m["model/attn_implementation"] == "sdpa"  # the kernel actually used, stored with the run
        assert m["eval/items_per_s"] > 0
    # each trained run stored its loader counts and, as the profile asks, its final model; no checkpoints remain
    run = next(results.glob("rehearsal/zhu/grpo-instruct/seed*"))
    data = json.loads((run / "data.json").read_text())
    assert data["train"]["rows_kept"] < data["train"]["rows_read"]
    assert (run / "model" / "config.json").exists() and not (run / "checkpoints").exists()
    log = [json.loads(l) for l in (run / "training_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "reward" in e] == [1, 2, 3]
    # every arm scored on the panel of the published file's benchmarks, by name, with the run's engine and prompt
    p = load_profile("rehearsal")
    for arm in stored:
        panel = json.loads(next(results.glob(f"rehearsal/*/{arm}/seed0/panel/metrics.json")).read_text())
        for name in p.panel.benchmarks:
            assert 0 < panel[f"panel/accuracy/{name}/n"] <= p.panel.per_benchmark, (arm, name)
        assert panel["panel/accuracy/VQA-RAD_test/n"] == p.panel.per_benchmark  # no training image among them


def test_a_data_part_built_by_an_older_fixture_is_built_again(tmp_path):
    root = tmp_path / "rehearsal"
    folder = root / "data" / "huatuo"
    folder.mkdir(parents=True)
    (folder / "medical_multimodel_evaluation_data.json").write_text("[]")  # an older build: no version marker
    sources.ensure_part(folder, root)
    objs = json.loads((folder / "medical_multimodel_evaluation_data.json").read_text())
    names = {o.get("dataset") for o in objs if isinstance(o, dict)}
    assert {"VQA-RAD_test", "MMMU_Medical_Validation", "OmniMedVQA"} <= names
    before = (folder / "medical_multimodel_evaluation_data.json").stat().st_mtime_ns
    sources.ensure_part(folder, root)  # current: left alone
    assert (folder / "medical_multimodel_evaluation_data.json").stat().st_mtime_ns == before
