"""Shared helpers for golden tests (fixtures from /work/shared, read at test time).

Other golden test modules import from here::

    from conftest import SHARED, FIXTURES, load_cases, require_shared

``SHARED`` is the shared fixture tree (``/work/shared`` next to the repo);
tests that need it skip when it is absent (fixtures are GPL and are never
copied into the project).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURES = SHARED / "fixtures"
DAMO_FIXTURES = FIXTURES / "damo"
KERNEL_FIXTURES = FIXTURES / "kernel"
CASES_TSV = DAMO_FIXTURES / "cases.tsv"


def require_shared(path: Path | None = None) -> Path:
    """Return ``path`` (default: SHARED) or skip the test when it does not exist."""
    p = SHARED if path is None else Path(path)
    if not p.exists():
        pytest.skip(f"shared fixtures not found: {p}")
    return p


def load_cases(regex: str = ".*") -> list[dict]:
    """Rows of cases.tsv whose case name matches ``regex`` (re.search).

    Each row is a dict with keys case, input, command, expected, damo_version,
    exit_code (all str), plus ``input_path`` / ``expected_path`` (absolute
    Path or None).  Returns [] when the shared tree is absent, so it is safe
    to call at collection time (e.g. in ``pytest.mark.parametrize``); pair it
    with the ``shared_dir`` fixture or ``require_shared()`` so the test skips.
    """
    if not CASES_TSV.exists():
        return []
    pat = re.compile(regex)
    rows = []
    with open(CASES_TSV, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if not pat.search(row["case"]):
                continue
            row = dict(row)
            row["input_path"] = DAMO_FIXTURES / row["input"] if row.get("input") else None
            row["expected_path"] = (
                DAMO_FIXTURES / row["expected"] if row.get("expected") else None
            )
            rows.append(row)
    return rows


def cases(regex: str = ".*") -> list:
    """``load_cases`` wrapped as pytest params with the case name as id."""
    return [pytest.param(r, id=r["case"]) for r in load_cases(regex)]


@pytest.fixture
def shared_dir() -> Path:
    """The shared fixture root; skips the test when it is absent."""
    return require_shared()


@pytest.fixture
def damo_fixtures() -> Path:
    return require_shared(DAMO_FIXTURES)


@pytest.fixture
def kernel_fixtures() -> Path:
    return require_shared(KERNEL_FIXTURES)
