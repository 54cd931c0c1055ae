"""docs/security.md is the threat model a reviewer checks: every role has its row, every
backend setting it names exists, and every security setting the README lists is in it."""

from __future__ import annotations

import re
from pathlib import Path

from training_backend.settings import BackendSettings

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "security.md"
ROLES = (
    "A signed-in user",
    "A `training` key",
    "An agent-bound key",
    "A job token",
    "A job config",
    "A job process",
    "A local user on the GPU machine",
    "A network attacker",
)


def _table_rows(text: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| **")
    ]


def test_every_role_has_a_row_saying_what_it_must_never_do() -> None:
    rows = {row[0].split("**")[1]: row for row in _table_rows(DOC.read_text())}
    assert set(rows) == set(ROLES)
    for role, (_, can, never, widened) in rows.items():
        assert can and never and widened, role


def test_the_backend_settings_it_names_exist() -> None:
    backend_fields = set(BackendSettings.model_fields)
    named = set(re.findall(r"`([a-z_]+)`", DOC.read_text()))
    backendish = {name for name in named if name in backend_fields}
    assert {
        "api_docs",
        "cookie_secure",
        "forwarded_allow_ips",
        "job_rate_limit_per_minute",
        "max_api_keys_per_user",
        "max_pending_enrollments_per_user",
        "max_datasets_per_user",
        "max_dataset_storage_bytes_per_user",
    } <= backendish


def test_the_readme_links_it_and_its_security_settings_are_all_there() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.count("(docs/security.md)") >= 3
    table = readme.split("### Security settings", 1)[1].split("\n### ", 1)[0]
    listed = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert listed, "the README's security settings table is empty"
    doc = DOC.read_text()
    for name in listed:
        assert name in BackendSettings.model_fields, name
        assert f"`{name}`" in doc, f"docs/security.md does not say what {name} widens"
