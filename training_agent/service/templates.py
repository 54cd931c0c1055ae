"""Finding and filling the service templates of ``packaging/service``.

The templates are kept in ``packaging/service`` (where packagers look) and copied into
the package as ``training_agent/service/templates`` by the wheel build (hatch
``force-include`` in pyproject.toml) and by the PyInstaller build (``datas``). A source
checkout or an editable install has no copy: then they are read from ``packaging/service``
next to the package. Placeholders are ``@{name}``: ``$`` means something to systemd.
"""

from __future__ import annotations

import string
from pathlib import Path

from training_agent.errors import ServiceError

SYSTEMD_TEMPLATE = "training-agent.service"
LAUNCHD_TEMPLATE = "training-agent.plist"
WINDOWS_TEMPLATE = "training-agent-task.xml"

_PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIRS = (_PACKAGE_DIR / "templates", _PACKAGE_DIR.parents[1] / "packaging" / "service")


class _UnitTemplate(string.Template):
    delimiter = "@"


def template_path(name: str) -> Path:
    """Where the template ``name`` is: the packaged copy first, then the source tree."""
    for directory in TEMPLATE_DIRS:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise ServiceError(
        f"the service template {name} is missing from this installation; reinstall training-agent"
    )


def read_template(name: str) -> str:
    return template_path(name).read_text(encoding="utf-8")


def fill(name: str, **values: str) -> str:
    """The template ``name`` with every ``@{key}`` replaced (a missing one is a bug)."""
    return _UnitTemplate(read_template(name)).substitute(values)
