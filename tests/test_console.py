"""Where output goes: a run's chatter to its log file, progress lines to the console, nothing into the book."""

import logging
import os
import subprocess
import sys
import warnings

from medrl_lib.common.console import LOG_ENV, PROGRESS, captured, progress, progress_lines


def test_captured_sends_python_c_level_logging_and_warnings_to_the_file(tmp_path, capfd, monkeypatch):
    monkeypatch.delenv(LOG_ENV, raising=False)
    handler = logging.StreamHandler(sys.stderr)  # a library handler made before the capture, holding stderr
    lib = logging.getLogger("some_library")
    lib.addHandler(handler)
    try:
        with captured(tmp_path / "train.log"):
            print("step chatter")
            print("[grpo] step 1/2 reward 1")  # a progress line: also printed
            warnings.warn("a library FutureWarning", FutureWarning)
            lib.warning("DeepSpeed-style logger warning")
            os.write(2, b"C-level stderr\n")
            subprocess.run([sys.executable, "-c", "print('child process output')"], check=True)
            sys.stderr.write("Loading weights: 100%|##########| 81/81\r\n")
    finally:
        lib.removeHandler(handler)
    text = (tmp_path / "train.log").read_text()
    for expected in ("step chatter", "[grpo] step 1/2", "FutureWarning", "DeepSpeed-style", "C-level stderr",
                     "child process output", "Loading weights"):
        assert expected in text, expected
    out, err = capfd.readouterr()
    assert out == "[grpo] step 1/2 reward 1\n"  # only the progress line reached the terminal
    assert err == ""
    print("after")  # the streams are back
    assert capfd.readouterr().out == "after\n"


def test_progress_goes_to_the_book_log_when_a_book_is_built(tmp_path, monkeypatch, capsys):
    log = tmp_path / "nb.log"
    monkeypatch.setenv(LOG_ENV, str(log))
    progress("base + GRPO seed 0: trained in 3 s")
    with captured(tmp_path / "run.log"):
        print("[sft] step 2/2 loss 0.1")
        print("not progress")
    assert capsys.readouterr().out == ""
    assert progress_lines(log.read_text()) == ["base + GRPO seed 0: trained in 3 s", "[sft] step 2/2 loss 0.1"]
    assert log.read_text().count(PROGRESS) == 2


def test_a_handler_made_inside_a_capture_writes_to_the_book_log_after_it(tmp_path, monkeypatch):
    monkeypatch.setenv(LOG_ENV, str(tmp_path / "nb.log"))
    with captured(tmp_path / "train.log"):
        handler = logging.StreamHandler(sys.stderr)  # made inside (a library imported there): holds the capture's stream
    logging.getLogger("late").addHandler(handler)
    try:
        logging.getLogger("late").warning("after the capture")  # neither lost nor an error
    finally:
        logging.getLogger("late").removeHandler(handler)
    assert "after the capture" in (tmp_path / "nb.log").read_text()
    assert "after the capture" not in (tmp_path / "train.log").read_text()
