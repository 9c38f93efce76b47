"""The package boundaries of DESIGN.md, and the project's lint rules, hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_actions_and_nlu_never_import_bot_and_nlu_imports_nothing_of_ours():
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--config", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout


def test_the_code_passes_ruff():
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_packages_opens_no_database_and_reads_no_settings(monkeypatch):
    # Nothing runs at import time: a broken environment must not matter until start-up.
    code = (
        "import os; os.environ['DATABASE_URL'] = 'nonsense://'; "
        "import actions.models, actions.tickets, actions.city, actions.migrate, bot.cli, nlu"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
