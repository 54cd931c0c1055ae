"""Secrets: API keys, enrollment tokens and job tokens, how they are made, stored and
compared.

Only hashes are stored. Every kind of secret carries far more entropy than a password
(190 bits for an API key or a single-use ``wae_`` enrollment token, 256 for a job
token), so a plain SHA-256 is enough and lets a key be found by its hash through a
unique index: checking a key costs one indexed lookup whatever the number of keys.
(Rejected: scrypt per key as in the reference, which must try every stored key in turn
because salted hashes cannot be looked up.)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

API_KEY_PREFIX = "wak_"
ENROLLMENT_TOKEN_PREFIX = "wae_"
API_KEY_RANDOM_CHARS = 32
API_KEY_DISPLAY_PREFIX_CHARS = 12
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_API_KEY_PATTERN = re.compile(rf"^{API_KEY_PREFIX}[0-9A-Za-z]{{{API_KEY_RANDOM_CHARS}}}$")
_ENROLLMENT_PATTERN = re.compile(
    rf"^{ENROLLMENT_TOKEN_PREFIX}[0-9A-Za-z]{{{API_KEY_RANDOM_CHARS}}}$"
)


def _base62_secret(prefix: str) -> str:
    # Each character drawn uniformly (no modulo bias): 32 of them carry 190 bits.
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(API_KEY_RANDOM_CHARS))


def generate_api_key() -> str:
    """A new key: ``wak_`` + 32 base62 characters."""
    return _base62_secret(API_KEY_PREFIX)


def generate_enrollment_token() -> str:
    """A new single-use enrollment token: ``wae_`` + 32 base62 characters."""
    return _base62_secret(ENROLLMENT_TOKEN_PREFIX)


def is_api_key_format(key: str) -> bool:
    """True when ``key`` looks like an API key (prefix, length and charset)."""
    return _API_KEY_PATTERN.fullmatch(key) is not None


def is_enrollment_token_format(token: str) -> bool:
    """True when ``token`` looks like an enrollment token (prefix, length and charset)."""
    return _ENROLLMENT_PATTERN.fullmatch(token) is not None


def display_prefix(key: str) -> str:
    """The first characters of a key, safe to show so a user can tell keys apart."""
    return key[:API_KEY_DISPLAY_PREFIX_CHARS]


def generate_job_token() -> str:
    """A new per-job token: 32 random bytes, base64url, 43 characters."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a key or token, the form in which it is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    """Constant-time check of ``secret`` against a stored hash (``None`` never matches)."""
    if stored_hash is None:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
