"""Every file the pipeline writes is written whole: to a temporary name beside it, then renamed over it.

A run interrupted mid-write, or a reader (a report, a resumed sweep, DVC) looking at the same moment,
finds the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

Writer = Callable[[Path], None]


def write_atomically(path: Path, writer: Writer) -> None:
    """``writer`` writes a temporary file beside ``path``, which then replaces ``path`` in one step."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    writer(tmp)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda p: p.write_text(text))


def write_json(path: Path, value) -> None:
    """``value`` as indented JSON with a final newline."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def save_torch(path: Path, obj) -> None:
    write_atomically(path, lambda p: torch.save(obj, p))
