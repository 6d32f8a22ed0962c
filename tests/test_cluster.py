"""The study as units of work on a cluster: the run list and its states, the run lock, ``medrl run``, ``--no-train``,
the batch scripts, and a real one-node SLURM cluster (tests/slurm_cluster.py) running the smoke study and a requeue."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medrl_lib.cli.main import main
from medrl_lib.common import locks
from medrl_lib.common.files import read_json, read_jsonl, write_json
from medrl_lib.experiments.results import RunNotStored, load_run
from medrl_lib.ops.runlist import study_runs

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _load(name: str):
    """A helper module of tests/ by path (tests/ is not on sys.path: its vllm/ folder would pass for the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


slurm_cluster = _load("slurm_cluster")


def _store(tmp_path, smoke_dirs) -> list[str]:
    """``--results-dir`` and ``--cache-dir`` of a fresh store beside the session's smoke model cache."""
    return ["--results-dir", str(tmp_path / "results"), "--cache-dir", str(smoke_dirs[0])]


def _plant(run, state: str) -> None:
    """Leave ``run``'s folder as a run in ``state`` leaves it (no training)."""
    if state == "missing":
        return
    write_json(run.path / "config.json", {"key": run.key, "config": {}})
    if state == "stored":
        write_json(run.path / "metrics.json", {"config_key": run.key, "eval/accuracy/all": 50.0})
    if state == "failed":
        write_json(run.path / "failed.json", {"error": "ValueError: bad row 3", "log": str(run.path / "train.log")})


def test_runs_shows_each_state_and_who_holds_a_running_run(tmp_path, smoke_dirs, capsys):
    store = _store(tmp_path, smoke_dirs)
    runs = study_runs("smoke", {"results_dir": str(tmp_path / "results"), "cache_dir": str(smoke_dirs[0])})
    from medrl_lib.experiments import study

    # every stored arm (grpo-sa-len reads grpo-sa's runs on smoke) x its seeds + the zero-shot evaluations
    expected = len({study.stored_arm("smoke", a) for a in study.ARMS}) * len(study.arm_profile("smoke", "sft").seeds)
    assert len(runs) == expected + len(study.ZERO_SHOT) == 16 and len({r.run_id for r in runs}) == len(runs)
    planted = {  # run -> the state its folder is left in
        runs[0].run_id: "stored",     # complete, with this config's key
        runs[1].run_id: "partial",    # started with this config, interrupted: resumes
        runs[2].run_id: "failed",     # its last attempt raised: the error and the log
        runs[3].run_id: "running",    # its lock is held (here, by this test)
    }
    for run in runs:  # a running run's folder is a started one; its lock is held below
        _plant(run, {"running": "partial"}.get(planted.get(run.run_id, "missing"), planted.get(run.run_id, "missing")))
    with locks.folder_lock(runs[3].path):
        assert main(["runs", "--profile", "smoke", *store, "--json"]) == 0
        rows = {r["run_id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
        assert main(["runs", "--profile", "smoke", *store]) == 0
        table = capsys.readouterr().out
    assert {i: rows[i]["state"] for i in planted} == planted
    assert sum(r["state"] == "missing" for r in rows.values()) == 12
    assert rows[runs[3].run_id]["host"] and rows[runs[2].run_id]["error"] == "ValueError: bad row 3"
    assert "16 runs: 1 stored, 1 running, 1 partial, 1 failed, 12 missing" in table
    # a stored run of another config (a changed setting) is not this run
    write_json(runs[0].path / "config.json", {"key": "0" * 16, "config": {}})
    write_json(runs[0].path / "metrics.json", {"config_key": "0" * 16})
    assert main(["runs", "--profile", "smoke", *store, "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["state"] == "missing"


def test_unknown_run_id_is_one_line_with_a_close_match(tmp_path, smoke_dirs, capsys):
    assert main(["run", "--profile", "smoke", *_store(tmp_path, smoke_dirs), "zhu/grpo-instruc/seed0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zhu/grpo-instruct/seed0" in err


def test_a_lock_whose_holder_died_is_taken_over(tmp_path):
    folder = tmp_path / "seed0"
    code = ("import os, sys; from medrl_lib.common.locks import folder_lock\n"
            f"with folder_lock({str(folder)!r}):\n    os.kill(os.getpid(), 9)")
    proc = subprocess.run([PY, "-c", code], capture_output=True)
    assert proc.returncode == -9 and locks.holder_path(folder).exists()  # died holding it: its label is left
    assert not locks.is_held(folder)  # the OS released the lock with the process
    with locks.folder_lock(folder, wait=False) as died:
        assert died["pid"] != os.getpid() and locks.holder(folder)["pid"] == os.getpid()


def test_a_shared_folder_is_built_once_by_two_builders(tmp_path):
    import threading

    from medrl_lib.models.loading import build_once

    calls = []

    def build(tmp):
        calls.append(tmp.name)
        time.sleep(0.5)  # long enough for the second builder to find the lock held
        (tmp / "weights.bin").write_text("w")

    threads = [threading.Thread(target=build_once, args=(tmp_path / "tiny-base-x", build, {"kind": "t"}),
                                kwargs={"marker": "done.json"}) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and (tmp_path / "tiny-base-x" / "weights.bin").exists()


def test_a_held_run_is_not_waited_for_with_no_wait(tmp_path, smoke_dirs, capsys):
    from medrl_lib.ops.runlist import execute

    store = _store(tmp_path, smoke_dirs)
    overrides = {"results_dir": str(tmp_path / "results"), "cache_dir": str(smoke_dirs[0])}
    run = study_runs("smoke", overrides)[1]
    with locks.folder_lock(run.path):
        with pytest.raises(locks.FolderHeld, match="pid"):
            execute("smoke", run, overrides, wait=False)
        assert main(["run", "--profile", "smoke", *store, "--no-wait", run.run_id]) == 0
    assert "held by" in capsys.readouterr().out and not (run.path / "config.json").exists()


def test_no_train_renders_nothing_and_lists_what_is_missing(tmp_path, smoke_dirs, capsys, monkeypatch):
    from medrl_lib.experiments import study
    from medrl_lib.experiments.results import NO_TRAIN_ENV

    assert main(["book", "--profile", "smoke", *_store(tmp_path, smoke_dirs), "--no-train", "--no-build"]) == 1
    err = capsys.readouterr().err
    assert "16 run(s) of the smoke study are not in the results store" in err
    assert "zhu/dpo/seed0  missing" in err and "medrl submit --profile smoke" in err
    assert NO_TRAIN_ENV not in os.environ  # a command's settings end with it
    monkeypatch.setenv(NO_TRAIN_ENV, "1")  # what the notebooks' kernels inherit
    with pytest.raises(RunNotStored, match="medrl submit"):
        study.run_arm("smoke", "sft", 0, {"results_dir": str(tmp_path / "results"),
                                          "cache_dir": str(smoke_dirs[0])})


def _scripts(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.sbatch"))}


def test_dry_run_writes_the_paper_studys_scripts(tmp_path, capsys):
    args = ["submit", "--profile", "paper", "--results-dir", str(tmp_path), "--max-parallel", "4", "--partition",
            "gpu", "--time", "24:00:00", "--setup", "module load cuda/12.4", "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    scripts = _scripts(tmp_path / "paper" / "slurm")
    runs = {name: text.split("RUNS=(\n")[1].split("\n)")[0].split() for name, text in scripts.items() if "RUNS" in text}
    # Zhu's runs on 4 GPUs (9 arms x 3 seeds), MedVLM-R1's on 2 (2 x 3), the zero-shot evaluations sharded by one
    # process over each group's GPUs (Zhu: 3, MedVLM-R1: 2): 38 runs, the book job last
    from medrl_lib.experiments import study

    seeds = len(study.arm_profile("paper", "sft").seeds)
    trained = {g: len({study.stored_arm("paper", a) for a, (_, grp, _) in study.ARMS.items() if grp == g}) * seeds
               for g in ("zhu", "ood")}
    zero = {g: sum(z[0] == g for z in study.ZERO_SHOT) for g in ("zhu", "ood")}
    assert {n: len(r) for n, r in runs.items()} == {"gpu4.sbatch": trained["zhu"], "gpu2.sbatch": trained["ood"],
                                                      "gpu4-1proc.sbatch": zero["zhu"], "gpu2-1proc.sbatch": zero["ood"]}
    assert "zhu/grpo-base/seed2" in runs["gpu4.sbatch"] and "ood/ood-sft/seed0" in runs["gpu2.sbatch"]
    zhu = scripts["gpu4.sbatch"]
    for line in ("#SBATCH --gres=gpu:4", "#SBATCH --array=0-26%4", "#SBATCH --requeue", "#SBATCH --partition=gpu",
                 "#SBATCH --signal=B:USR1@300", "#SBATCH --time=24:00:00", "module load cuda/12.4",
                 'scontrol requeue "$TASK"'):
        assert line in zhu, line
    assert "--no-train" in scripts["book.sbatch"] and "export MEDRL_MACHINE=gpus=4" in scripts["book.sbatch"]
    for path in (tmp_path / "paper" / "slurm").glob("*.sbatch"):
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, path.name  # valid shell
    assert "--dependency=afterany:$j0:$j1:$j2:$j3" in out
    assert "MEDRL_MACHINE" not in os.environ


# --- a real one-node SLURM cluster ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.unavailable()
    if reason:
        pytest.skip(reason)
    c = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    yield c
    c.stop()


def _submit(cluster, args: list[str]) -> str:
    """``medrl submit`` in a process of its own, against the test cluster; returns what it printed."""
    proc = subprocess.run([PY, "-m", "medrl_lib.cli.main", "submit", "--scheduler", "slurm", *args], env=cluster.env,
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_the_smoke_study_through_slurm_matches_medrl_book_and_trains_each_run_once(cluster, smoke_book, smoke_dirs, tmp_path):
    _, alone = smoke_book  # the same study built by `medrl book --profile smoke` alone
    results, book = tmp_path / "results", tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
    # a study half done (for the time of make test): the store holds all but six runs, which the cluster trains
    shutil.copytree(alone / "smoke", results / "smoke")
    todo = ["zhu/grpo-base/seed0", "zhu/grpo-instruct/seed0", "zhu/sft/seed0", "zhu/dpo/seed0", "ood/ood-grpo/seed0",
            "zhu/instruct-zero-shot/seed0"]
    for run_id in todo:
        shutil.rmtree(results / "smoke" / run_id)
    t0 = time.time()
    out = _submit(cluster, ["--profile", "smoke", "--results-dir", str(results), "--cache-dir", str(smoke_dirs[0]),
                            "--book-dir", str(book), "--max-parallel", "2"])
    assert "6 to run, in 1 job array(s)" in out  # the stored runs are not submitted
    # a second `medrl run` of the array's first run, started with it: one of the two trains it, the other loads it
    twin = subprocess.Popen([PY, "-m", "medrl_lib.cli.main", "run", "--profile", "smoke", "--results-dir", str(results),
                             "--cache-dir", str(smoke_dirs[0]), "zhu/grpo-base/seed0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    middle = []

    def watch(queue):
        runs = [line for line in queue if "book" not in line]
        running = [line for line in runs if "RUNNING" in line]
        # some stored, two running, the rest waiting (a task scoring its panel shows its run stored: look again)
        if not any("running" in m for m in middle) and len(running) == 2:
            proc = subprocess.run([PY, "-m", "medrl_lib.cli.main", "runs", "--profile", "smoke", "--results-dir",
                                   str(results), "--cache-dir", str(smoke_dirs[0])], capture_output=True, text=True)
            middle.append(proc.stdout)
        assert len(running) <= 2

    cluster.wait_drained(timeout=1200, on_poll=watch)
    wall = time.time() - t0
    logs = results / "smoke" / "slurm" / "logs"
    said = [twin.communicate(timeout=600)[0], next(logs.glob("medrl-smoke-cpu1-*_0.out")).read_text()]
    assert twin.returncode == 0, said[0]
    assert sorted("trained" if "grpo-base/seed0: trained" in o else "loaded" if "grpo-base/seed0: loaded" in o
                  else o for o in said) == ["loaded", "trained"]
    assert (results / "smoke" / "zhu" / "grpo-base" / "seed0" / "train.log").read_text().count("GRPO from") == 1
    for run_id in ("zhu/grpo-instruct/seed0", "ood/ood-grpo/seed0"):  # trained once each, by its task
        assert (results / "smoke" / run_id / "train.log").read_text().count("GRPO from") == 1, run_id
    book_log = next(logs.glob("medrl-smoke-book-*.out")).read_text()
    assert (book / "_build" / "html" / "index.html").exists(), book_log[-3000:]
    runs = study_runs("smoke", {"results_dir": str(results), "cache_dir": str(smoke_dirs[0])})
    for run in runs:
        ours, theirs = load_run(run.path, run.key), load_run(alone / run.path.relative_to(results), run.key)
        assert ours is not None and theirs is not None, run.run_id
        assert ours.metrics["eval/accuracy/all"] == theirs.metrics["eval/accuracy/all"], run.run_id
        assert [r["completion"] for r in ours.records] == [r["completion"] for r in theirs.records], run.run_id
    seen = next((m for m in middle if "running" in m), middle[-1] if middle else "")
    print(f"\nsmoke study through SLURM (--max-parallel 2): {wall:.0f} s; medrl runs in the middle:\n{seen}")
    assert "running" in seen and "stored" in seen


@pytest.mark.slow
def test_a_requeued_job_resumes_its_run_and_ends_as_an_uninterrupted_run(cluster, smoke_dirs, smoke_profile,
                                                                         tmp_path):
    from medrl_lib.training.standins import ensure_start_model

    ensure_start_model(smoke_profile)
    run_id = "zhu/grpo-instruct/seed0"
    overrides = json.dumps({"grpo.max_steps": 12, "grpo.save_steps": 3})
    common = ["--profile", "smoke", "--cache-dir", str(smoke_dirs[0]), "--overrides", overrides]
    # the uninterrupted run, here
    assert main(["run", *common, "--results-dir", str(tmp_path / "alone"), run_id]) == 0
    results = tmp_path / "results"
    out = _submit(cluster, [*common, "--results-dir", str(results), "--no-book", run_id])
    job = re.search(r"submitted cpu1\.sbatch: job (\d+)", out).group(1)
    run = results / "smoke" / run_id
    t0 = time.time()
    # mid-GRPO: a complete checkpoint written (its trainer state lands last), steps left
    while not any((run / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert time.time() - t0 < 300 and cluster.queue(), "the run ended before a checkpoint was seen"
        time.sleep(0.2)
    cluster.run("scontrol", "requeue", f"{job}_0")  # as preemption does
    while "PENDING" not in " ".join(cluster.queue()):
        time.sleep(0.5)
    # SLURM holds a requeued job ~2 minutes; we release it sooner, but not within the second of the requeue: slurmd
    # refuses a relaunch whose credential is not newer, in whole seconds, than the revoked one ("already killed")
    time.sleep(2)
    cluster.run("scontrol", "update", f"jobid={job}_0", "starttime=now")
    cluster.wait_drained(timeout=600)
    log = (run / "train.log").read_text()
    out = next((results / "smoke" / "slurm" / "logs").glob("*.out")).read_text()
    assert "restart 1" in out and "resuming from" in log, out[-2000:]
    ours, alone = load_run(run), load_run(tmp_path / "alone" / "smoke" / run_id)
    assert ours is not None and alone is not None
    assert [h["step"] for h in ours.log_history if "train_runtime" not in h] == list(range(1, 13))
    assert ours.metrics["eval/accuracy/all"] == alone.metrics["eval/accuracy/all"]
    assert [r["completion"] for r in ours.records] == [r["completion"] for r in alone.records]
    assert read_jsonl(run / "training_log.jsonl")[-1]["step"] == 12 and read_json(run / "config.json")


@pytest.mark.slow
def test_book_jobs_train_the_missing_runs_side_by_side_once_each(smoke_book, smoke_dirs, tmp_path):
    from medrl_lib.cli.cluster import train_side_by_side

    _, alone = smoke_book
    results = tmp_path / "results"
    shutil.copytree(alone / "smoke", results / "smoke")  # all but three runs stored
    todo = ["zhu/grpo-instruct/seed0", "zhu/sft/seed0", "zhu/zero-shot-instruct/seed0"]
    for run_id in todo:
        shutil.rmtree(results / "smoke" / run_id)
    overrides = {"results_dir": str(results), "cache_dir": str(smoke_dirs[0])}
    said = []
    assert train_side_by_side("smoke", overrides, 2, tmp_path / "logs", log=said.append) == 0
    assert said[0].startswith("training 3 run(s) in 2 processes side by side")
    assert sorted(s.split(":")[0].strip() for s in said[1:]) == sorted(todo)  # one line per run, each trained once
    logs = [(tmp_path / "logs" / f"runs-{k}.log").read_text() for k in range(2)]
    for run_id in todo:
        assert sum(f"{run_id}: trained" in log or f"{run_id}: evaluated" in log for log in logs) == 1, run_id
        ours, theirs = load_run(results / "smoke" / run_id), load_run(alone / "smoke" / run_id)
        assert ours.metrics["eval/accuracy/all"] == theirs.metrics["eval/accuracy/all"], run_id
        assert json.loads((results / "smoke" / run_id / "provenance.json").read_text())["torch_threads"] == 1
    assert train_side_by_side("smoke", overrides, 2, tmp_path / "logs", log=said.append) == 0  # nothing left
    assert len(said) == 4
