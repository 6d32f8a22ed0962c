"""What a run prints, and where it goes: the book shows results, the console shows progress, files keep the rest.

Training and model loading print step logs, library warnings and progress bars. In the built book they would
bury the results, so :func:`captured` sends everything written inside it (Python's ``sys.stdout``/``sys.stderr``,
the C-level file descriptors 1 and 2 that libraries and compilers write to, and the logging handlers that hold
either) to a log file, typically ``<run>/train.log``. Lines that report progress (:data:`PROGRESS_PREFIXES`,
such as ``[grpo] step 5/50 ...``) also go to :func:`progress`.

:func:`progress` is a line meant for the person waiting: under ``medrl book`` (which sets :data:`LOG_ENV` to the
notebook's log file) it is appended there with the :data:`PROGRESS` mark and the command prints it on the console;
in an interactive notebook or a script it is printed.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator, TextIO

#: Environment variable naming the log file of the notebook being executed by ``medrl book``.
LOG_ENV = "MEDRL_LOG"
#: Mark of a progress line in that log file (the console prints these lines without the mark).
PROGRESS = "medrl> "
#: Lines of training output that report progress.
PROGRESS_PREFIXES = ("[grpo]", "[sft]", "[lora]", "[dpo]", "[start]", "launch:")


def progress(line: str) -> None:
    """Report one line of progress: to the book build's log (the console shows it), else to stdout.

    >>> progress("base + GRPO seed 0: loaded")  # no book build running: printed
    base + GRPO seed 0: loaded
    """
    path = os.environ.get(LOG_ENV)
    if not path:
        print(line, flush=True)
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(PROGRESS + line.rstrip("\n") + "\n")


def progress_lines(text: str) -> list[str]:
    """The progress lines of a log text, without their mark.

    >>> progress_lines("noise\\nmedrl> [grpo] step 1/2\\nmore noise\\n")
    ['[grpo] step 1/2']
    """
    return [line[len(PROGRESS):] for line in text.splitlines() if line.startswith(PROGRESS)]


class _Tee:
    """A text stream that writes to the log file and forwards whole progress lines to :func:`progress`."""

    def __init__(self, log: TextIO, echo, after: TextIO):
        self.log, self.echo, self.after, self.pending, self.closed_log = log, echo, after, "", False

    def write(self, text: str) -> int:
        if self.closed_log:  # a logging handler made inside the capture outlived it
            book_log = os.environ.get(LOG_ENV)
            if book_log:
                with open(book_log, "a", encoding="utf-8") as f:
                    f.write(text)
            else:
                self.after.write(text)
            return len(text)
        self.log.write(text)
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line.lstrip("\r").startswith(PROGRESS_PREFIXES):
                self.echo(line.lstrip("\r"))
        return len(text)

    def flush(self) -> None:
        if not self.closed_log:
            self.log.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _stream_handlers(streams: tuple) -> list[logging.StreamHandler]:
    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [h for lg in loggers for h in lg.handlers
            if type(h) is logging.StreamHandler and h.stream in streams]  # subclasses: files, or stderr looked up


def _echo(stream: TextIO, fd_copy: int | None):
    """Where a captured progress line goes: the book's log under ``medrl book``, else the terminal or notebook."""
    if os.environ.get(LOG_ENV):
        return progress
    try:
        on_fd1 = stream.fileno() == 1
    except (AttributeError, OSError, ValueError):
        on_fd1 = False
    if on_fd1 and fd_copy is not None:  # fd 1 now leads to the log: write to the copy of the terminal's
        return lambda line: os.write(fd_copy, (line + "\n").encode("utf-8"))

    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
    return write


@contextlib.contextmanager
def captured(log_path: str | Path, *, fds: bool = True) -> Iterator[Path]:
    """Send everything printed inside the block to ``log_path`` (appended); progress lines also to :func:`progress`.

    ``fds`` also redirects file descriptors 1 and 2 (output of C code and of child processes that inherit them).
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved_streams = (sys.stdout, sys.stderr)
    with open(log_path, "a", encoding="utf-8", buffering=1) as log:
        handlers = _stream_handlers(saved_streams)
        for stream in saved_streams:
            with contextlib.suppress(Exception):
                stream.flush()
        saved_fds = []
        if fds:
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    saved_fds.append((fd, os.dup(fd)))
                    os.dup2(log.fileno(), fd)
        tee = _Tee(log, _echo(saved_streams[0], dict(saved_fds).get(1)), after=saved_streams[1])
        previous = [(h, h.stream) for h in handlers]
        for h in handlers:
            h.stream = tee
        sys.stdout = sys.stderr = tee
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")  # each library warning once, into the log

                def to_log(message, category, filename, lineno, file=None, line=None):
                    tee.write(warnings.formatwarning(message, category, filename, lineno, line))

                warnings.showwarning = to_log
                yield log_path
        finally:
            sys.stdout, sys.stderr = saved_streams
            for h, stream in previous:
                h.stream = stream
            tee.flush()
            for fd, copy in saved_fds:
                os.dup2(copy, fd)
                os.close(copy)
            tee.closed_log = True


def text_table(rows: list[list[str]], right: list[bool] | None = None, max_width: int | None = None) -> list[str]:
    """Lines of a fixed-width table, columns two spaces apart and a rule under the first row (the header); a column
    is right-aligned where ``right`` says so, and no wider than ``max_width``.

    >>> for line in text_table([["arm", "h"], ["sft", "1.5"]], right=[False, True]):
    ...     print(line)
    arm    h
    ---  ---
    sft  1.5
    """
    right = right or [False] * len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths = [min(w, max_width) for w in widths] if max_width else widths
    lines = ["  ".join(c.rjust(w) if r_ else c.ljust(w) for c, w, r_ in zip(row, widths, right)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def quiet_notebook() -> None:
    """Under ``medrl book``: library warnings and progress bars raised outside a run go to the notebook's log file,
    not into the book. Interactively (no :data:`LOG_ENV`) nothing changes."""
    path = os.environ.get(LOG_ENV)
    if not path:
        return

    def to_log(message, category, filename, lineno, file=None, line=None):
        with open(path, "a", encoding="utf-8") as f:
            f.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = to_log
    with captured(path, fds=False):  # libraries that print on import, and the logging handlers they make there
        for name in ("deepspeed", "trl"):
            with contextlib.suppress(Exception):
                importlib.import_module(name)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with contextlib.suppress(ImportError):
        import datasets

        datasets.disable_progress_bars()
