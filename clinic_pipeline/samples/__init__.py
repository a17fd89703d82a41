"""Sample clinic exports: the small built-in fixture, and the generator of realistic ones (`generator`)."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURE_DIR: Path = Path(__file__).resolve().parent / "fixture"


def copy_fixture(dest: Path) -> Path:
    """Copy the built-in export (patients.csv + manifest.json) into `dest`; returns `dest`.

    Existing files of the same name are replaced, anything else in `dest` is left alone.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for path in FIXTURE_DIR.iterdir():
        if path.is_file():
            shutil.copy2(path, dest / path.name)
    return dest
