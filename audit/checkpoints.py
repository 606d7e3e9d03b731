"""Signed checkpoints of the chain head, kept outside the database.

The hash chain alone shows a broken link, but whoever can write to the database (and drop its
triggers) can rewrite a row and re-chain everything after it, or cut the tail and move the head, and
the chain holds again. A checkpoint is the head (seq, hash) signed with an Ed25519 key the database
never holds, appended to sinks the operator chooses (an append-only file, a webhook witness). A later
trail must still contain every checkpointed row with the checkpointed hash; since each hash commits
to every row before it, one checkpoint vouches for the whole prefix up to its seq."""

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Signed with the payload, so that a checkpoint's signature can never be passed off as anything else.
DOMAIN = b"liaison-audit-checkpoint/1\n"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str  # when it was signed (UTC, ISO 8601)
    key: str  # the signing key's id (key_id)
    sig: str  # base64 Ed25519 signature of DOMAIN + payload

    def line(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))


class BadCheckpoint(ValueError):
    """A checkpoint line that does not parse or whose signature does not verify: itself evidence."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(path: Path) -> str:
    """Write a new private key (PEM, owner-only) at `path`; its public key's PEM."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return public_pem(key.public_key())


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    """A public key from its PEM, or the public half of a private key's PEM."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, *, seq: int, hash: str, at: datetime | None = None) -> Checkpoint:
    when = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    kid = key_id(key.public_key())
    sig = key.sign(DOMAIN + _payload(seq, hash, when, kid))
    return Checkpoint(seq=seq, hash=hash, at=when, key=kid, sig=base64.b64encode(sig).decode())


def parse(lines: list[str], keys: list[Ed25519PublicKey]) -> list[Checkpoint]:
    """The checkpoints of a sink's lines, each signature checked; blank lines are skipped."""
    by_id = {key_id(k): k for k in keys}
    out = []
    for number, text in enumerate(lines, 1):
        if text.strip():
            out.append(_verified(number, text, by_id))
    return out


def _verified(number: int, text: str, keys: dict[str, Ed25519PublicKey]) -> Checkpoint:
    try:
        fields = json.loads(text)
        cp = Checkpoint(**{name: fields[name] for name in ("seq", "hash", "at", "key", "sig")})
        if not isinstance(fields["seq"], int) or cp.seq < 1:
            raise ValueError("seq")
        signature = base64.b64decode(cp.sig, validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadCheckpoint(f"checkpoint line {number} does not parse ({exc})") from None
    if cp.key not in keys:
        raise BadCheckpoint(f"checkpoint line {number} is signed by unknown key {cp.key}")
    try:
        keys[cp.key].verify(signature, DOMAIN + _payload(cp.seq, cp.hash, cp.at, cp.key))
    except InvalidSignature:
        raise BadCheckpoint(
            f"checkpoint line {number} (seq {cp.seq}): the signature does not verify"
        ) from None
    return cp


def _payload(seq: int, hash: str, at: str, key: str) -> bytes:
    return json.dumps({"seq": seq, "hash": hash, "at": at, "key": key}, sort_keys=True).encode()
