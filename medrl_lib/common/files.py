"""Files written atomically (a reader never sees half a file) and the hash that keys a run or a built model.

Every file is written to a temporary name in the same folder and renamed into place.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json(d / "x.json", {"a": 1}); read_json(d / "x.json")
{'a': 1}
>>> config_key({"a": 1}) == config_key({"a": 1.0}), len(config_key({"a": 1}))
(False, 16)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def _atomic_write(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text``, atomically."""
    _atomic_write(Path(path), text)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON, atomically."""
    _atomic_write(Path(path), json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def write_jsonl(path: str | Path, rows: list[Any]) -> None:
    """Write one JSON object per line, atomically."""
    _atomic_write(Path(path), "".join(json.dumps(r, sort_keys=True, default=_default) + "\n" for r in rows))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: str | Path) -> list[Any]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def config_key(config: dict) -> str:
    """The hash that keys a run: sha256 of the config's canonical JSON, 16 hex digits."""
    blob = json.dumps(config, sort_keys=True, default=_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
