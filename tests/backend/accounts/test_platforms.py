"""Platform detection from real User-Agent strings (macOS is darwin, never windows)."""

from __future__ import annotations

import pytest

from training_backend.platforms import detect_platform, parse_platform

REAL_USER_AGENTS = [
    # macOS browsers and tools
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "darwin",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "darwin",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:132.0) Gecko/20100101 Firefox/132.0",
        "darwin",
    ),
    ("Safari/20619.1.26.31.6 CFNetwork/1568.200.51 Darwin/24.1.0", "darwin"),
    ("python-requests/2.32.3 (Darwin 23.6.0; arm64)", "darwin"),
    # Windows
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        "windows",
    ),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0", "windows"),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        "windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6",
        "windows",
    ),
    # Linux
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "linux",
    ),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "linux"),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "linux",
    ),
    # phones and tablets cannot run the agent
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        None,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.7 Mobile/15E148 Safari/604.1",
        None,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        None,
    ),
    # nothing to go on
    ("curl/8.5.0", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("user_agent", "expected"), REAL_USER_AGENTS)
def test_detect_platform(user_agent: str | None, expected: str | None) -> None:
    assert detect_platform(user_agent) == expected


def test_darwin_is_not_windows_although_it_contains_win() -> None:
    assert "win" in "darwin"
    assert detect_platform("Darwin") == "darwin"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("linux", "linux"),
        ("darwin", "darwin"),
        ("windows", "windows"),
        ("Linux", None),
        ("mac", None),
    ],
)
def test_parse_platform_accepts_only_the_exact_names(value: str, expected: str | None) -> None:
    assert parse_platform(value) == expected
