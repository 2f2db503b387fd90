"""The docs stay true: every env var the code reads is in the README's configuration table."""

from __future__ import annotations

from pathlib import Path

from nexuscart.config import ENV_VARS

ROOT = Path(__file__).resolve().parent.parent


def test_readme_configuration_table_lists_every_env_var() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [var for var, *_ in ENV_VARS if f"| `{var}` |" not in readme]
    assert missing == []


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/server" in readme
    assert "scripts/test" in readme
