"""Liaison's own keys: the one that signs, the others that still (or already) verify, and the public
JWKS they make (/.well-known/jwks.json).

Rotation keeps more than one key live: tokens carry the `kid` of the key that signed them, and every
key named here verifies its own tokens until they expire, so a new signing key and the public halves
of the keys before it (or of the next one, published ahead) are configured side by side."""

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk

from auth.tokens import Keyring, Signer, VerifyKey, build_local_keys

ASYMMETRIC = ("RS", "ES")


@dataclass(frozen=True)
class LocalKeys:
    signer: Signer
    keyring: Keyring
    jwks: dict[str, Any]  # public keys only: never a secret or a private half


def local_keys(
    *, alg: str, secret: str, private_pem: str | None, kid: str, verify_pems: dict[str, str]
) -> LocalKeys:
    """The signer and the keyring of it and of every verify-only key; ValueError on an unusable key."""
    signer, own = build_local_keys(alg=alg, secret=secret, private_pem=private_pem, kid=kid)
    if kid in verify_pems:
        raise ValueError(f"key id {kid!r} is the signing key's: a verify-only key needs another")
    keys = [own.find(kid)] + [_verify_key(k, pem) for k, pem in sorted(verify_pems.items())]
    published = [_public_jwk(k) for k in keys if k.alg.startswith(ASYMMETRIC)]
    return LocalKeys(signer, Keyring(keys), {"keys": published})


def _verify_key(kid: str, pem: str) -> VerifyKey:
    """A PEM public key (or a private one, of which only the public half is kept); its algorithm
    follows from its type, so a key moves from RS256 to ES256 as easily as to another RSA key."""
    if not kid or len(kid) > 200:
        raise ValueError("a verify key's id is 1 to 200 characters")
    public = _load_public(kid, pem.encode())
    if isinstance(public, rsa.RSAPublicKey) and public.key_size >= 2048:
        alg = "RS256"
    elif isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        alg = "ES256"
    else:
        raise ValueError(f"verify key {kid!r} is neither RSA (2048 bits or more) nor EC P-256")
    spki = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return VerifyKey(kid, alg, jwk.construct(spki.decode(), alg))


def _load_public(kid: str, data: bytes) -> Any:
    try:
        return serialization.load_pem_public_key(data)
    except ValueError:
        pass
    try:
        return serialization.load_pem_private_key(data, password=None).public_key()
    except (ValueError, TypeError):
        raise ValueError(f"verify key {kid!r} is not a PEM key") from None


def _public_jwk(key: VerifyKey) -> dict[str, Any]:
    public = key.key.public_key() if _is_private(key) else key.key
    return public.to_dict() | {"kid": key.kid, "alg": key.alg, "use": "sig"}


def _is_private(key: VerifyKey) -> bool:
    return "d" in key.key.to_dict()
