"""Passwords: hashed with Argon2id (argon2-cffi), checked in time that does not depend on
whether the user exists.

Why argon2-cffi rather than ``hashlib.scrypt``: Argon2id is the first choice of current
password-storage guidance, and the library gives us the whole job: a random salt, the
standard ``$argon2id$v=19$m=…,t=…,p=…$salt$hash`` string that carries its own
parameters, a constant-time verify, and ``check_needs_rehash`` to move old hashes to
new parameters at the next sign-in. With scrypt we would hand-write the encoding and the
parameter upgrades. Parameters are the library's defaults (RFC 9106 "low memory":
64 MiB, 3 passes, 4 lanes; about 0.2 s on a small server).
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from training_backend.errors import ApiError

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024

#: The hasher every password goes through; tests swap in a cheap one.
HASHER = PasswordHasher()

_DUMMY_HASH: dict[PasswordHasher, str] = {}


def check_password_rules(password: str) -> None:
    """400 ``INVALID_PASSWORD`` unless ``password`` has 8 to 1024 characters."""
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        message = f"A password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        raise ApiError(400, "INVALID_PASSWORD", message)


def generate_password() -> str:
    """A new random password: 24 URL-safe characters (144 bits)."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    """The stored form of ``password`` (salted Argon2id)."""
    return HASHER.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    """True when ``password`` matches ``stored_hash``.

    With no stored hash (unknown user, or a user without a password) a dummy hash is
    checked anyway, so the answer takes as long as for a real user.
    """
    if stored_hash is None:
        _verify(password, _dummy_hash())
        return False
    return _verify(password, stored_hash)


def needs_rehash(stored_hash: str) -> bool:
    """True when ``stored_hash`` was made with other parameters than ``HASHER``'s."""
    try:
        return HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def _verify(password: str, stored_hash: str) -> bool:
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    if HASHER not in _DUMMY_HASH:
        _DUMMY_HASH[HASHER] = HASHER.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASH[HASHER]
