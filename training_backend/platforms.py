"""The platforms the agent is built for, and telling a browser's platform from its User-Agent.

FineTune Lab checks ``"win" in ua`` before ``"mac"``, so every User-Agent that mentions
``Darwin`` (which contains "win") is taken for Windows. Here each platform is matched by
whole words, phones and tablets first (they cannot run the agent), then Windows, then
Apple, then Linux.
"""

from __future__ import annotations

import re
from typing import Literal, TypeAlias

Platform: TypeAlias = Literal["linux", "darwin", "windows"]
PLATFORMS: tuple[Platform, ...] = ("linux", "darwin", "windows")
#: How each platform is called on the page.
DISPLAY_NAMES: dict[Platform, str] = {"linux": "Linux", "darwin": "macOS", "windows": "Windows"}

_MOBILE = re.compile(r"\b(iphone|ipad|ipod|android|windows phone)\b", re.IGNORECASE)
_WINDOWS = re.compile(r"\b(windows|win32|win64|wow64)\b", re.IGNORECASE)
_DARWIN = re.compile(r"\b(macintosh|mac os x|macos|darwin)\b", re.IGNORECASE)
_LINUX = re.compile(r"\b(linux|x11|cros|ubuntu|fedora|debian)\b", re.IGNORECASE)


def detect_platform(user_agent: str | None) -> Platform | None:
    """The desktop platform a User-Agent string names, or ``None`` if it names none.

    >>> detect_platform("curl/8.4.0 (Darwin 23.1.0)")
    'darwin'
    >>> detect_platform("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    'windows'
    >>> detect_platform("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)") is None
    True
    """
    if not user_agent or _MOBILE.search(user_agent):
        return None
    if _WINDOWS.search(user_agent):
        return "windows"
    if _DARWIN.search(user_agent):
        return "darwin"
    if _LINUX.search(user_agent):
        return "linux"
    return None


def parse_platform(value: str) -> Platform | None:
    """``value`` as one of ``PLATFORMS`` (exact, lowercase), else ``None``."""
    for platform in PLATFORMS:
        if value == platform:
            return platform
    return None
