"""The docs stay true: every env var the code reads is in the README's configuration table,
every test they cite exists, and they name no file outside the repository."""

from __future__ import annotations

import re
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


def _docs() -> dict[Path, str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {p: p.read_text() for p in paths}


def test_every_test_the_docs_name_exists() -> None:
    # the docs cite tests as proof of an invariant; a renamed or removed test must not
    # leave a proof that does not exist
    defined = set()
    for src in [*(ROOT / "tests").rglob("*.py"), *(ROOT / "core_rs").rglob("*.rs")]:
        defined |= set(re.findall(r"\b(?:def|fn) (test_\w+)", src.read_text()))
    named = {
        (path.relative_to(ROOT).as_posix(), name)
        for path, text in _docs().items()
        for name in re.findall(r"\b(test_\w+)\b(?!\.py)", text)
    }
    assert sorted((doc, name) for doc, name in named if name not in defined) == []


def test_the_docs_name_no_file_outside_the_repository() -> None:
    outside = re.compile(r"(?:^|[\s`(\"'])(\.\./|/work/|/home/|/root/)")
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path, text in _docs().items()
        for n, line in enumerate(text.splitlines(), 1)
        if outside.search(line)
    ]
    assert found == []
