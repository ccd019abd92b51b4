"""Small file helpers shared by every layer: atomic writes and JSON reads with clear errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Text counterpart of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """JSON counterpart of :func:`atomic_write_bytes` (indented, sorted keys)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json_object(path: str | os.PathLike, missing: str,
                     corrupt: str = "corrupt {path}") -> dict[str, Any]:
    """Read a JSON object: FileNotFoundError(``missing``) if absent, ValueError if not a JSON object.

    ``corrupt`` formats the ValueError's prefix (``{path}`` is filled in); the parse error follows it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{corrupt.format(path=path)}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{corrupt.format(path=path)}: expected a JSON object")
    return data
