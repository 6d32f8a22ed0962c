"""Wall time of the whole book from empty stores, then of a rebuild when nothing changed, measured in one run.

Both builds use fresh temporary results and model caches (nothing is borrowed from earlier runs) and a copy of
the book sources, so the figures are those of a fresh clone whose venv is installed.

    .venv/bin/python benchmarks/book_time.py [--profile cpu] [--jobs N]   # --jobs as medrl book (make book: one per core)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from medrl_lib.cli.main import main as medrl

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="as medrl book --jobs (default: one per core, "
                    "as make book)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "book"
        shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build", "chapters"))
        args = ["book", "--profile", a.profile, "--results-dir", f"{tmp}/results", "--cache-dir", f"{tmp}/cache",
                "--book-dir", str(book), "--jobs", str(a.jobs)]
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            if medrl(args) != 0:
                raise SystemExit("the book build failed")
            times.append(time.perf_counter() - t0)
    print(f"profile {a.profile}, --jobs {a.jobs}: first build {times[0] / 60:.1f} min (target <= 30), "
          f"rebuild with nothing changed {times[1]:.0f} s (target < 120); ratio {times[0] / times[1]:.0f}x")


if __name__ == "__main__":
    main()
