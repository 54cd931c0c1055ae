"""API key and job token formats."""

from __future__ import annotations

import re

from training_backend.security import (
    display_prefix,
    generate_api_key,
    generate_job_token,
    hash_secret,
    is_api_key_format,
    secret_matches,
)


def test_api_keys_are_wak_and_32_base62_characters() -> None:
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"wak_[0-9A-Za-z]{32}", key) for key in keys)
    assert all(is_api_key_format(key) for key in keys)
    # Every base62 character shows up: the alphabet is used whole.
    assert len(set("".join(key[4:] for key in keys))) == 62


def test_format_check_rejects_near_misses() -> None:
    good = generate_api_key()
    for bad in (good[:-1], good + "a", "wak-" + good[4:], good[:-1] + "_", "WAK_" + good[4:]):
        assert not is_api_key_format(bad)


def test_display_prefix_is_the_first_12_characters() -> None:
    key = generate_api_key()
    assert display_prefix(key) == key[:12]


def test_job_tokens_are_43_url_safe_characters() -> None:
    token = generate_job_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)


def test_secrets_are_stored_as_sha256_and_compared_by_hash() -> None:
    token = generate_job_token()
    stored = hash_secret(token)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    assert secret_matches(token, stored)
    assert not secret_matches(token + "x", stored)
    assert not secret_matches(token, None)
