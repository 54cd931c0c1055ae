"""Release signatures: Ed25519 over the archive's name and SHA-256, checked against the
keys the build trusts and nothing the backend says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from training_agent.update.signature import (
    SignatureError,
    public_key_text,
    sign,
    trusted_keys,
    verify,
)

NAME = "training-agent-0.3.0-linux-amd64.tar.gz"
SHA = "ab" * 32


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_signature_of_a_trusted_key_verifies(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    keys = [public_key_text(other.public_key()), public_key_text(key.public_key())]
    verify(NAME, SHA, sign(key, NAME, SHA), keys)
    verify(NAME, SHA.upper(), sign(key, NAME, SHA) + "\n", keys)  # case and newline


@pytest.mark.parametrize(
    ("name", "sha256"),
    [
        (NAME, "cd" * 32),  # another archive's bytes
        ("training-agent-0.2.0-linux-amd64.tar.gz", SHA),  # an old release under a new name
        ("training-agent-0.3.0-linux-arm64.tar.gz", SHA),  # another machine's build
    ],
)
def test_a_signature_for_anything_else_is_refused(
    key: Ed25519PrivateKey, name: str, sha256: str
) -> None:
    keys = [public_key_text(key.public_key())]
    with pytest.raises(SignatureError, match="does not vouch for"):
        verify(name, sha256, sign(key, NAME, SHA), keys)


def test_an_untrusted_key_garbage_or_no_key_at_all_is_refused(key: Ed25519PrivateKey) -> None:
    stranger = public_key_text(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SignatureError, match="does not vouch for"):
        verify(NAME, SHA, sign(key, NAME, SHA), [stranger])
    with pytest.raises(SignatureError, match="not base64"):
        verify(NAME, SHA, "not a signature!", [stranger])
    with pytest.raises(SignatureError, match="trusts no release key"):
        verify(NAME, SHA, sign(key, NAME, SHA), [])


def test_the_trusted_keys_come_from_the_build_file(tmp_path: Path) -> None:
    build_file = tmp_path / "_build.json"
    assert trusted_keys(build_file) == ()
    build_file.write_text(json.dumps({"version": "0.3.0", "trusted_keys": ["a", "b"]}))
    assert trusted_keys(build_file) == ("a", "b")
    build_file.write_text("not json")
    assert trusted_keys(build_file) == ()
