"""End to end on the smoke profile: the notebook through papermill, the stored metrics, and the book build."""

import json
import math
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(smoke_dirs, tmp_path_factory):
    """The first experiment notebook executed by papermill on the smoke profile."""
    import papermill as pm

    cache, results = smoke_dirs
    out = tmp_path_factory.mktemp("nb") / "06_ood_generalization.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "06_ood_generalization.ipynb"), str(out),
                        parameters={"profile": "smoke",
                                    "overrides": {"cache_dir": str(cache), "results_dir": str(results)}},
                        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    return out, results


def test_notebook_produces_stored_metrics(executed):
    out, results = executed
    run = results / "smoke" / "06_ood_generalization" / "grpo" / "seed0"
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


def test_notebook_shows_figure_and_table(executed):
    out, _ = executed
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure"
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("paper (reference)" in "".join(h) and "GRPO seed 0" in "".join(h) for h in html), "no accuracy table"


def test_rerun_reuses_the_stored_run(executed, smoke_profile):
    from medrl_lib.experiments import grpo_arm

    _, results = executed
    run = grpo_arm(smoke_profile, "06_ood_generalization", "grpo", 0)
    assert run.reused  # same resolved config: loaded, not retrained
    assert run.metrics["eval/accuracy/all"] == json.loads(
        (results / "smoke" / "06_ood_generalization" / "grpo" / "seed0" / "metrics.json").read_text())[
        "eval/accuracy/all"]


def test_failing_notebook_names_the_cell(tmp_path, monkeypatch):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from medrl_lib import cli

    nb = new_notebook(cells=[new_code_cell("profile = 'smoke'\noverrides = {}\nforce = False"),
                             new_code_cell("x = 1"), new_code_cell("raise ValueError('boom')")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setattr(cli, "NOTEBOOKS", tmp_path)
    with pytest.raises(cli.NotebookFailed) as err:
        cli.execute(src, tmp_path / "out" / "99_broken.ipynb", {"profile": "smoke"})
    msg = str(err.value)
    assert "99_broken.ipynb" in msg and "ValueError" in msg and "boom" in msg and "cell" in msg
    assert (tmp_path / "out" / "99_broken.ipynb").exists()  # the partial copy is kept


def test_book_builds(executed, tmp_path):
    """The book sources build with warnings as errors, with the executed chapter in place."""
    from medrl_lib import cli

    out, _ = executed
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    (book / "chapters").mkdir()
    shutil.copy(out, book / "chapters" / out.name)
    index = cli.build_book(book_dir=book)
    assert index.exists()
    page = (book / "_build" / "html" / "chapters" / "06_ood_generalization.html").read_text()
    assert "paper (reference)" in page and "<img" in page
