"""Release signing keys (Ed25519): make one, or sign archives by hand.

    python packaging/sign.py genkey KEYFILE        # private key (PEM, 0600); prints the public key
    python packaging/sign.py pubkey KEYFILE        # prints the public key of KEYFILE
    python packaging/sign.py sign KEYFILE ARCHIVE… # writes ARCHIVE.sig beside each

``packaging/build --sign KEYFILE`` does the signing of what it builds, and bakes the
key's public half into the build as trusted (training_agent/update/signature.py says
what is signed). Keep KEYFILE out of the repository: in CI it is a secret.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from training_agent.update.signature import (  # noqa: E402
    SIGNATURE_SUFFIX,
    load_private_key,
    public_key_text,
    sign,
)


def genkey(path: Path) -> str:
    """Write a new private key to ``path`` (owner only); its public key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return public_key_text(key.public_key())


def sign_archive(keyfile: Path, archive: Path) -> Path:
    """Write ``<archive>.sig``; its path."""
    with archive.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    signature = sign(load_private_key(keyfile), archive.name, digest)
    target = archive.with_name(archive.name + SIGNATURE_SUFFIX)
    target.write_text(signature + "\n", encoding="utf-8")
    return target


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "genkey":
        print(genkey(Path(argv[1])))
        return 0
    if len(argv) == 2 and argv[0] == "pubkey":
        print(public_key_text(load_private_key(Path(argv[1])).public_key()))
        return 0
    if len(argv) >= 3 and argv[0] == "sign":
        for archive in argv[2:]:
            print(sign_archive(Path(argv[1]), Path(archive)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
