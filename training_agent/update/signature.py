"""Release signatures: Ed25519 over an archive's name and SHA-256.

``packaging/build --sign KEYFILE`` writes ``<archive>.sig`` beside each archive: one
line, the base64 of the Ed25519 signature of :func:`signed_message`, which binds the
archive's file name (so its version, OS and architecture) to its SHA-256. A backend
serves the signature with the archive; the agent checks it against the public keys
its own build trusts (:func:`trusted_keys`: baked in by ``packaging/build``, never
taken from the backend), so a backend that is wrong or compromised cannot make an
agent install anything its publisher did not sign, nor an old signed release under a
new name.

Keys: ``python packaging/sign.py genkey KEYFILE`` writes a private key (PEM, mode 0600)
and prints its public key, the base64 of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_SUFFIX = ".sig"
_CONTEXT = b"training-agent release signature v1\n"
BUILD_FILE = Path(__file__).resolve().parent.parent / "_build.json"


class SignatureError(Exception):
    """The signature does not vouch for the archive; the message says why."""


def signed_message(filename: str, sha256: str) -> bytes:
    """What is signed: a fixed context, the archive's name and its SHA-256 (hex)."""
    return _CONTEXT + f"{filename}\n{sha256.lower()}\n".encode()


def sign(private_key: Ed25519PrivateKey, filename: str, sha256: str) -> str:
    """The ``.sig`` line (base64) for that archive."""
    return base64.b64encode(private_key.sign(signed_message(filename, sha256))).decode()


def verify(filename: str, sha256: str, signature: str, keys: Iterable[str]) -> None:
    """Raise :class:`SignatureError` unless one of ``keys`` signed that archive."""
    trusted = [_public_key(key) for key in keys]
    if not trusted:
        raise SignatureError("this build trusts no release key (built without --sign)")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the signature is not base64") from exc
    message = signed_message(filename, sha256)
    for key in trusted:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return
    raise SignatureError(
        f"the signature does not vouch for {filename} with SHA-256 {sha256[:12]}… (it was "
        "made for another file, or by a key this agent does not trust)"
    )


def public_key_text(key: Ed25519PublicKey) -> str:
    """A public key as this project writes it: base64 of its 32 raw bytes."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in a PEM file (``packaging/sign.py genkey``)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key")
    return key


def trusted_keys(build_file: Path = BUILD_FILE) -> tuple[str, ...]:
    """The release keys this build trusts (``trusted_keys`` of ``_build.json``)."""
    try:
        data = json.loads(build_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    keys = data.get("trusted_keys") if isinstance(data, dict) else None
    return tuple(str(key) for key in keys) if isinstance(keys, list) else ()


def _public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"a trusted key of this build is malformed ({text[:12]}…)") from exc
