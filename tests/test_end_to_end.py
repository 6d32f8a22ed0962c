"""End to end on the smoke profile: every notebook through papermill, the stored metrics, and the book build."""

import json
import math
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
pytestmark = pytest.mark.slow


def test_every_chapter_is_built(smoke_book):
    book, _ = smoke_book
    for name in CHAPTERS:
        assert (book / "_build" / "html" / "chapters" / f"{name}.html").exists(), name
    assert (book / "_build" / "html" / "methods.html").exists()


def test_ood_run_stores_metrics_records_and_ids(smoke_book):
    _, results = smoke_book
    run = results / "smoke" / "ood" / "ood-grpo" / "seed0"
    metrics = json.loads((run / "metrics.json").read_text())
    for m in ("mri", "ct", "x-ray", "all"):
        value = metrics[f"eval/accuracy/{m}"]
        assert 0.0 <= value <= 100.0 and not math.isnan(value)
    # every metric of Zhu Appendix B is there, with a 95% interval around its value
    for name in ("accuracy/all", "similarity", "perplexity", "thinking_reward", "thinking_length"):
        value, low, high = (metrics[f"eval/{name}{s}"] for s in ("", "/low", "/high"))
        if metrics[f"eval/{name}/n"]:
            assert low <= value <= high, name
    assert metrics["eval/thinking_reward/n"] + metrics["eval/thinking_reward/n_missing"] + \
        metrics["eval/thinking_reward/n_unparseable"] + metrics["eval/thinking_reward/n_out_of_range"] == 12
    # 4 test items per modality in the smoke profile: every one has a record
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert len(records) == 12 and {r["modality"] for r in records} == {"MRI", "CT", "X-ray"}
    overall = 100.0 * sum(r["correct"] for r in records) / len(records)
    assert metrics["eval/accuracy/all"] == pytest.approx(overall)
    # the training log has one entry per step with the reward components TRL computed from our functions
    log = [json.loads(line) for line in (run / "training_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "rewards/format_reward/mean" in e]
    assert [e["step"] for e in steps] == [1, 2]
    assert all(0.0 <= e["rewards/accuracy_reward/mean"] <= 1.0 for e in steps)
    # train and test ids are stored and disjoint
    train_ids = set(json.loads((run / "train_ids.json").read_text()))
    test_ids = set(json.loads((run / "test_ids.json").read_text()))
    assert len(train_ids) == 8 and train_ids.isdisjoint(test_ids)
    # what the run printed is in its folder, not in the book; its curves are TensorBoard events beside it
    assert "[grpo] step 2/2" in (run / "train.log").read_text()
    assert list((run / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard events in the run folder"
    assert not (run / "checkpoints").exists()  # the completed run's checkpoints are removed, its events kept


def test_chapters_show_figures_and_tables(smoke_book):
    book, _ = smoke_book
    for name in CHAPTERS:
        nb = json.loads((book / "chapters" / f"{name}.ipynb").read_text())
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert any("image/png" in o.get("data", {}) for o in outputs) or name in ("07_summary", "08_protocol"), f"{name}: no figure"
        assert any("text/html" in o.get("data", {}) for o in outputs), f"{name}: no table"
        assert not any(o.get("output_type") == "error" for o in outputs), name
    summary = (book / "_build" / "html" / "chapters" / "07_summary.html").read_text()
    assert "paper (reference)" in summary and "verdict" in summary


def test_pages_fold_their_code_and_show_a_missing_value_as_a_dash(smoke_book):
    import re

    book, _ = smoke_book
    html = book / "_build" / "html" / "chapters"
    for name in CHAPTERS:
        page = (html / f"{name}.html").read_text()
        assert "tag_hide-input" in page, f"{name}: no folded code cell"
        cells = re.findall(r"<td>([^<]*)</td>", page)
        assert not [c for c in cells if c.strip().lower() in ("nan", "nan%")], f"{name}: a missing value shown as nan"
    summary = (html / "07_summary.html").read_text()
    assert "<td>—</td>" in summary  # the smoke profile leaves metrics out (no judge): shown as a dash


def test_rerun_reuses_the_stored_run(smoke_book, smoke_dirs):
    from medrl_lib.experiments import study

    cache, results = smoke_dirs
    run = study.run_arm("smoke", "ood-grpo", 0, {"cache_dir": str(cache), "results_dir": str(results)})
    assert run.reused  # same resolved config: loaded, not retrained


def test_failing_notebook_names_the_cell(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from medrl_lib.cli import main as cli

    nb = new_notebook(cells=[new_code_cell("profile = 'smoke'\noverrides = {}\nforce = False"),
                             new_code_cell("from medrl_lib.common.console import progress\nprogress('[grpo] step 1/1')\n"
                                           "print('chatter only for the log')"),
                             new_code_cell("raise ValueError('boom')")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setattr(cli, "NOTEBOOKS", tmp_path)
    shown = []
    with pytest.raises(cli.NotebookFailed) as err:
        cli.execute(src, tmp_path / "out" / "99_broken.ipynb", {"profile": "smoke"}, log=shown.append)
    msg = str(err.value)
    assert "99_broken.ipynb" in msg and "ValueError" in msg and "boom" in msg and "cell" in msg
    assert (tmp_path / "out" / "99_broken.ipynb").exists()  # the partial copy is kept
    log = tmp_path / "_build" / "logs" / "99_broken.log"
    assert f"full log: {log}" in msg
    assert "chatter only for the log" in log.read_text()  # the notebook's output went to its log
    assert [line.strip() for line in shown] == ["[grpo] step 1/1"]  # the console saw the progress line only


def test_injected_parameters_are_hidden_in_the_book(tmp_path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from medrl_lib.cli.main import hide_injected_parameters

    nb = new_notebook(cells=[new_code_cell("profile = 'cpu'"), new_code_cell("x = 1")])
    nb.cells[0].metadata["tags"] = ["injected-parameters"]
    nbformat.write(nb, tmp_path / "c.ipynb")
    hide_injected_parameters(tmp_path / "c.ipynb")
    tags = [c.metadata.get("tags", []) for c in nbformat.read(tmp_path / "c.ipynb", as_version=4).cells]
    assert tags == [["injected-parameters", "remove-cell"], []]


def test_notebooks_are_stored_without_outputs():
    for name in CHAPTERS:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") for c in code), name
        tags = [c.get("metadata", {}).get("tags", []) for c in code]
        assert sum("parameters" in t for t in tags) == 1, f"{name}: not exactly one parameters cell"


def test_chapters_open_with_their_question_and_hide_their_setup():
    for name in CHAPTERS:
        nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
        first = nb["cells"][0]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# "), name
        assert "How to read this chapter" in "".join(first["source"]), f"{name}: no reading guide"
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        imports, params = code[0], code[1]
        assert "quiet_notebook()" in "".join(imports["source"]), f"{name}: warnings would reach the page"
        for cell in (imports, params):
            assert "remove-cell" in cell["metadata"].get("tags", []), f"{name}: setup cell shown in the book"
        assert "parameters" in params["metadata"]["tags"], name
        assert "setup_tables()" in "".join(imports["source"]), f"{name}: tables would print NaN"
        # the reader sees figures and tables; the calls that made them are folded behind a toggle, or removed
        for cell in code[2:]:
            tags = cell["metadata"].get("tags", [])
            assert {"remove-cell", "remove-input", "hide-input"} & set(tags), f"{name}: code shown unfolded"


def test_every_arm_is_scored_on_the_panel_beside_its_run(smoke_book, smoke_dirs):
    from medrl_lib.experiments import study
    from medrl_lib.config import load_profile

    cache, results = smoke_dirs
    overrides = {"cache_dir": str(cache), "results_dir": str(results)}
    p = load_profile("smoke")
    for row in study.TRANSFER_ROWS:  # the Transfer chapter scored every row: a panel folder beside each run
        group, arm = row.split("/")
        seed_dir = results / "smoke" / group / study.stored_arm("smoke", arm) / "seed0" if arm in study.ARMS else \
            results / "smoke" / group / arm / "seed0"
        metrics = json.loads((seed_dir / "panel" / "metrics.json").read_text())
        for name in p.panel.benchmarks:
            assert metrics[f"panel/accuracy/{name}/n"] == p.panel.per_benchmark, (row, name)
            assert metrics[f"panel/accuracy/{name}/low"] <= metrics[f"panel/accuracy/{name}"] <= \
                metrics[f"panel/accuracy/{name}/high"]
        records = [json.loads(line) for line in (seed_dir / "panel" / "records.jsonl").read_text().splitlines()]
        assert sorted({r["benchmark"] for r in records}) == sorted(p.panel.benchmarks)
        assert json.loads((seed_dir / "panel" / "test_ids.json").read_text()) == [r["id"] for r in records]
    assert (results / "smoke" / "zhu" / "lora" / "seed0" / "model" / "config.json").exists()  # LoRA kept, merged
    # another panel: the stored run is reused (the panel is not in its key), only the panel is scored again
    smaller = {**overrides, "panel.per_benchmark": 2}
    assert study.run_arm("smoke", "dpo", 0, smaller).reused
    rescored = study.panel_arm("smoke", "dpo", 0, smaller)
    assert not rescored.reused and rescored.metrics["panel/accuracy/synthetic-yes-no/n"] == 2
    assert study.panel_arm("smoke", "dpo", 0, smaller).reused


def test_the_transfer_chapter_reports_the_panel(smoke_book):
    book, _ = smoke_book
    page = (book / "_build" / "html" / "chapters" / "09_transfer.html").read_text()
    assert "A synthetic panel" in page and "stands in for no real benchmark" in page
    assert "ranking-by-benchmark tests on the synthetic panel" in page
    for name in ("synthetic-yes-no", "synthetic-reworded", "synthetic-low-contrast"):
        assert name in page
