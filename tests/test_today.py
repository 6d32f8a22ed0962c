"""Today's start models: the `today` profile (the paper profile with Qwen3-VL-2B-Instruct, which publishes no base
checkpoint), its rehearsal twin, and the arms that are not applicable there: listed, skipped, never failed.

The twin's GRPO arm trains through the paper's launch in tests/test_families.py (the same stand-in folder); here the
profiles, the run list, the estimate, the Protocol chapter and a book whose chapter E1 does not apply."""

import json

import nbformat
import pytest

from medrl_lib.cli.main import main
from medrl_lib.config import ConfigError, load_profile
from medrl_lib.experiments import study
from medrl_lib.experiments.protocol import applicability_summary, arms_frame, protocol, protocol_table
from medrl_lib.ops import rehearsal
from medrl_lib.ops.estimate import estimate
from medrl_lib.ops.runlist import select, skipped_runs, study_runs
from medrl_lib.scoring.claims import CLAIMS, claims_with_arms, untested_note

NO_BASE = {"model.base": ""}
BASE_ARMS = {"grpo-base", "base-zero-shot"}


def test_today_is_the_paper_profile_with_todays_start_model():
    paper, today = load_profile("paper").to_dict(), load_profile("today").to_dict()
    changed = {k: v for k, v in rehearsal.flatten(today).items() if rehearsal.flatten(paper).get(k) != v}
    assert changed == {"name": "today", "model.base": "", "model.instruct": "Qwen/Qwen3-VL-2B-Instruct"}


@pytest.mark.parametrize("arm", sorted(set(study.ARMS) - BASE_ARMS))
def test_rehearsal_today_is_today_with_smaller_parts(arm):
    big, small = study.arm_profile("today", arm).to_dict(), study.arm_profile("rehearsal-today", arm).to_dict()
    assert rehearsal.drift(big, small) == {}
    assert small["model"]["instruct"].endswith("models/Qwen3-VL-2B-Instruct") and small["model"]["base"] == ""


@pytest.mark.parametrize("profile, overrides, arm, applies", [
    ("today", None, "grpo-base", False),              # E1's base arm: no base checkpoint
    ("today", None, "zhu/base-zero-shot", False),     # the base start's zero-shot row, as a row key
    ("today", None, "zero-shot-base", False),         # the Protocol chapter's name of the same start
    ("today", None, "grpo-instruct", True),           # every instruct arm runs
    ("today", None, "zhu/zero-shot-instruct", True),
    ("paper", None, "grpo-base", True),               # Qwen2-VL-2B has its base checkpoint
    ("smoke", NO_BASE, "grpo-base", False),           # any profile whose model.base is empty
])
def test_which_arms_apply(profile, overrides, arm, applies):
    assert (study.not_applicable(profile, arm, overrides) is None) == applies


def test_an_unknown_arm_is_an_error_not_a_skip():
    with pytest.raises(ValueError, match="unknown arm"):
        study.not_applicable("today", "grpo-bsae")


def test_a_base_start_without_a_base_checkpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="model.init.*model.base"):
        load_profile("today", {"model.init": "base"})


def test_run_arms_skips_an_arm_that_does_not_apply_without_training(tmp_path):
    overrides = {**NO_BASE, "results_dir": str(tmp_path / "results"), "cache_dir": str(tmp_path / "cache")}
    assert study.run_arms("smoke", ["grpo-base"], [0], overrides) == {}
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()  # nothing built, nothing run


def test_the_run_list_leaves_them_out_and_says_why():
    ids = [r.run_id for r in study_runs("today")]
    assert len(ids) == 34 and not any("/grpo-base/" in i or "/base-zero-shot/" in i for i in ids)
    assert [row for row, _ in skipped_runs("today")] == ["zhu/grpo-base", "zhu/base-zero-shot"]
    assert skipped_runs("paper") == []
    with pytest.raises(ConfigError, match="not applicable on this profile: no base checkpoint"):
        select(study_runs("today"), ["zhu/grpo-base/seed0"], skipped_runs("today"))


def test_medrl_runs_lists_the_skipped_arms(capsys):
    assert main(["runs", "--profile", "today"]) == 0
    out = capsys.readouterr().out
    assert "34 runs: 34 missing" in out and "not applicable: zhu/grpo-base (no base checkpoint" in out


def test_the_estimate_counts_only_what_runs():
    today, paper = estimate("today", vllm=True), estimate("paper", vllm=True)
    assert today.total("runs") == 34 == paper.total("runs") - 4  # grpo-base's 3 seeds and one zero-shot row
    assert {r.arm for r in today.rows}.isdisjoint(BASE_ARMS)
    assert any("grpo-base) is not applicable" in a for a in today.assumptions)
    assert any("Qwen3-VL-2B-Instruct's published architecture" in a for a in today.assumptions)
    # same settings, one arm fewer: fewer GPU-hours than the paper study
    assert 0 < today.total("gpu_hours") < paper.total("gpu_hours")


def test_the_protocol_lists_them_as_not_applicable():
    frame = arms_frame("today")
    assert frame.loc["grpo-base", "status"].startswith("not applicable: no base checkpoint")
    assert frame.loc["grpo-instruct", "status"] == "runs"
    assert frame.loc["grpo-instruct", "model"] == "Qwen3-VL-2B-Instruct"
    table = protocol_table("today")
    assert "grpo-base" not in set(table.arm)  # nothing of it runs to compare
    model = table[(table.arm == "grpo-instruct") & (table.setting == "model")].iloc[0]
    assert (model.same, model.reason) == ("differs", "start model choice of the today profile (configs/today.yaml)")
    assert "UNDOCUMENTED" not in set(protocol_table("paper").reason)
    assert applicability_summary(protocol("today")).startswith("Not applicable on this profile")


def test_claims_of_an_arm_that_did_not_run_are_named_not_tested():
    runs = {arm: [] for arm in study.ARMS if arm != "grpo-base"}
    assert [c.id for c in CLAIMS if c not in claims_with_arms(CLAIMS, runs)] == ["E1"]
    assert "E1 (grpo-base)" in untested_note(CLAIMS, runs)


def test_the_transfer_rows_leave_out_the_base_start():
    rows = study.transfer_rows("today")
    assert "zhu/grpo-base" not in rows and "zhu/base-zero-shot" not in rows
    assert rows["zhu/grpo-instruct"] == ("grpo-instruct", "zhu/instruct-zero-shot", "zhu/sft")
    assert study.transfer_rows("paper") == study.TRANSFER_ROWS


def test_a_book_writes_a_chapter_that_does_not_apply_as_a_page_that_says_so(tmp_path, smoke_dirs, monkeypatch):
    import shutil

    from medrl_lib.cli.main import BOOK

    book = tmp_path / "book"
    shutil.copytree(BOOK, book, ignore=shutil.ignore_patterns("_build", "chapters"))
    cache, _ = smoke_dirs
    rc = main(["book", "--profile", "smoke", "--overrides", json.dumps(NO_BASE), "--only", "01_initialization",
               "08_protocol", "--results-dir", str(tmp_path / "results"), "--cache-dir", str(cache),
               "--book-dir", str(book), "--no-build", "--skip-check"])
    assert rc == 0
    page = nbformat.read(str(book / "chapters" / "01_initialization.ipynb"), as_version=4)
    assert page.cells[0].source.startswith("# E1 Initialisation")
    assert "not applicable on the `smoke` profile" in page.cells[1].source
    assert not any(c.cell_type == "code" for c in page.cells)
    assert not (tmp_path / "results" / "smoke" / "zhu" / "grpo-base").exists()  # nothing of E1 ran
    protocol_page = (book / "chapters" / "08_protocol.ipynb").read_text()
    assert "Not applicable on this profile" in protocol_page and "grpo-base (no base checkpoint" in protocol_page


def test_running_the_chapter_by_hand_says_why_at_once():
    with pytest.raises(study.NotApplicable, match="01_initialization.*no base checkpoint"):
        study.require_chapter("today", "01_initialization")
    study.require_chapter("paper", "01_initialization")  # applies: no error


@pytest.mark.parametrize("text, error", [
    ("extends: paper\nmodel: {base: ''}\n", "must set its own 'name'"),   # would write into paper's results folder
    ("extends: nosuch\nname: x\n", "no such profile file"),               # a parent that is not there
    ("extends: [paper]\nname: x\n", "must name a profile"),               # not a name
    ("extends: self.yaml\nname: x\n", "cycle"),                           # itself
])
def test_a_profile_that_extends_another_is_checked(tmp_path, text, error):
    path = tmp_path / "self.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_profile(path)


def test_an_extending_profile_merges_mappings_key_by_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: paper\nname: mine\ngrpo: {max_steps: 10}\n")
    p = load_profile(path)
    assert (p.name, p.grpo.max_steps, p.grpo.beta, p.model.instruct) == ("mine", 10, 0.04, "Qwen/Qwen2-VL-2B-Instruct")


def test_the_preflight_plans_memory_with_the_familys_shapes(capsys):
    assert main(["check", "--profile", "today"]) == 1  # offline here: the hub models and the GPUs are missing
    out = capsys.readouterr().out
    assert "model Qwen/Qwen3-VL-2B-Instruct" in out and "model Qwen/Qwen2-VL-2B " not in out  # no base model asked for
    # Qwen3-VL's 16-px patches at the papers' pixel cap (Qwen2-VL: 14 px, 2048 patches), its 24 blocks, 2.13B parameters
    assert "6 images x 1568 patches x 24 blocks" in out and "2.13B parameters" in out
