"""Locate files packaged with rrm-data (recipes, schemas, dataset cards).

In a wheel they live under ``rrm_data/_resources``; in a source checkout they sit
at the repository root. Both layouts resolve to the same names.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """Directory of packaged resources of one kind: ``recipes``, ``schemas`` or ``datacards``."""
    for candidate in (_PACKAGE / "_resources" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"rrm-data resources '{kind}' are missing from the installation")
