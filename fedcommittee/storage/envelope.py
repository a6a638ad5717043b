"""Envelope encryption for one or many recipients (validation shards, committee-only updates).

Construction
------------
* A fresh random 256-bit content key encrypts the payload once with AES-256-GCM (96-bit random nonce).
* For each recipient the content key is wrapped with ephemeral-static ECDH: a fresh ephemeral key
  pair per recipient, ``shared = ECDH(ephemeral_private, recipient_public)``, then
  ``wrap_key = HKDF-SHA256(shared, salt = ephemeral_public || recipient_public,
  info = label || kem id || recipient key id || context)`` and ``AES-256-GCM(wrap_key)`` over the
  content key (its own 96-bit nonce).
* The content ciphertext's associated data is the whole serialized header (magic, version, algorithm
  ids, every recipient entry with its key id, ephemeral key and wrapped key, the content nonce, a key
  commitment) followed by the caller's context string, so flipping any byte of the blob, or opening
  under another context, fails authentication.
* The header carries a key commitment ``HMAC-SHA256(content_key, label)``. AES-GCM is not key-committing,
  so without it a malicious sender could craft one blob that opens to *different* plaintexts for
  different recipients. With it, every recipient that opens the blob gets the same plaintext.

Two recipient key types are supported:

* **X25519** (``kem = "X25519-HKDF-SHA256-A256GCM"``), recommended. Each committee member registers a
  dedicated X25519 *encryption* key on the ledger next to its Fabric identity; signing and encryption
  keys stay separate.
* **P-256** (``kem = "P256-HKDF-SHA256-A256GCM"``), for sealing directly to a Fabric identity's
  ECDSA P-256 public key (from its enrollment certificate) when no separate encryption key is
  registered. It works, but reuses a signing key for key agreement; prefer X25519 keys.

What it does *not* give: sender authentication. Anyone with the recipients' public keys can seal.
Authenticity comes from the ledger: the sender's signed transaction records the blob's sha256 and CID,
and recipients must fetch it through ``ContentStore.get``. Recipients' public keys must likewise come
from the ledger, never from the sender: use :func:`seal_for_registered` with the registered keys, and
:func:`check_recipients` on the receiving side.

Wire format (version 1)
-----------------------
``b"FCENV" | 0x01 | uint32 big-endian header length | header (canonical UTF-8 JSON) | ciphertext+tag``

Header fields: ``alg`` ("A256GCM"), ``nonce`` (b64), ``kc`` (key commitment, b64), ``ctx`` (sha256 hex of
the context, so a wrong context gives a clear error), ``r``: list of ``{"kem", "kid", "epk", "wn", "wk"}``
(key id = sha256 hex of the recipient's raw public key; ephemeral public key raw; wrap nonce; wrapped
content key). Nothing is ever pickled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import struct
from collections.abc import Iterable
from typing import Union

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import DecryptionError, EnvelopeError, EnvelopeFormatError, KeyFormatError, NotARecipient

__all__ = [
    "PublicKey",
    "PrivateKey",
    "MAGIC",
    "VERSION",
    "KEM_X25519",
    "KEM_P256",
    "seal",
    "open",
    "open_envelope",
    "is_envelope",
    "seal_for_registered",
    "load_public_keys",
    "envelope_recipients",
    "check_recipients",
    "generate_keypair",
    "key_id",
    "short_key_id",
    "public_key_to_pem",
    "public_key_from_pem",
    "public_key_to_raw",
    "public_key_from_raw",
    "load_public_key",
    "private_key_to_pem",
    "private_key_from_pem",
    "private_key_to_raw",
    "private_key_from_raw",
]

PublicKey = Union[x25519.X25519PublicKey, ec.EllipticCurvePublicKey]  # noqa: UP007 (runtime alias)
PrivateKey = Union[x25519.X25519PrivateKey, ec.EllipticCurvePrivateKey]  # noqa: UP007

MAGIC = b"FCENV"
VERSION = 1
_PREFIX = struct.Struct(">5sBI")  # magic, version, header length
CONTENT_ALG = "A256GCM"
KEM_X25519 = "X25519-HKDF-SHA256-A256GCM"
KEM_P256 = "P256-HKDF-SHA256-A256GCM"
_KEMS = (KEM_X25519, KEM_P256)
_LABEL = b"fedcommittee/envelope/v1"
_KEY_LEN = 32
_NONCE_LEN = 12
_TAG_LEN = 16
_X25519_RAW_LEN = 32
_P256_RAW_LEN = 65  # uncompressed X9.62 point
MAX_RECIPIENTS = 1024
MAX_HEADER_BYTES = 1 << 20
MAX_CONTEXT_CHARS = 1024
MAX_PLAINTEXT_BYTES = (1 << 31) - 1 - (1 << 20)  # AES-GCM via OpenSSL takes < 2**31 bytes per call


# ------------------------------------------------------------------------------------------- keys


def _kem_of(key: object, x25519_type: type, ec_type: type, what: str) -> str:
    """The KEM a key belongs to; ``what`` ("public"/"private") only words the refusal."""
    if isinstance(key, x25519_type):
        return KEM_X25519
    if isinstance(key, ec_type):
        if not isinstance(key.curve, ec.SECP256R1):
            raise KeyFormatError(f"unsupported EC curve {key.curve.name}: only P-256 (secp256r1)")
        return KEM_P256
    raise KeyFormatError(f"unsupported {what} key type {type(key).__name__}: use X25519 or P-256")


def _kem_of_public(key: object) -> str:
    return _kem_of(key, x25519.X25519PublicKey, ec.EllipticCurvePublicKey, "public")


def _kem_of_private(key: object) -> str:
    return _kem_of(key, x25519.X25519PrivateKey, ec.EllipticCurvePrivateKey, "private")


def generate_keypair(kind: str = "x25519") -> tuple[PrivateKey, PublicKey]:
    """A new ``(private, public)`` pair; ``kind`` is ``"x25519"`` (recommended) or ``"p256"``."""
    kind = kind.lower().replace("-", "")
    if kind == "x25519":
        priv: PrivateKey = x25519.X25519PrivateKey.generate()
    elif kind in ("p256", "secp256r1", "prime256v1"):
        priv = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"unknown key kind {kind!r}: use 'x25519' or 'p256'")
    return priv, priv.public_key()


def public_key_to_raw(key: PublicKey) -> bytes:
    """Raw public key: 32 bytes for X25519, the 65-byte uncompressed point for P-256."""
    if _kem_of_public(key) == KEM_X25519:
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def public_key_from_raw(raw: bytes) -> PublicKey:
    """Inverse of :func:`public_key_to_raw`; the type follows from the length (32 or 65 bytes)."""
    raw = bytes(raw)
    try:
        if len(raw) == _X25519_RAW_LEN:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        if len(raw) == _P256_RAW_LEN and raw[0] == 0x04:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise KeyFormatError(f"invalid raw public key: {exc}") from None
    raise KeyFormatError(
        f"raw public key must be 32 bytes (X25519) or a 65-byte uncompressed P-256 point, got {len(raw)}"
    )


def key_id(public_key: PublicKey) -> str:
    """sha256 (64 lowercase hex) of the raw public key; the full value is what the format stores."""
    return hashlib.sha256(public_key_to_raw(public_key)).hexdigest()


def short_key_id(public_key_or_id: PublicKey | str, n: int = 16) -> str:
    """First ``n`` hex characters of the key id, for display only."""
    kid = public_key_or_id if isinstance(public_key_or_id, str) else key_id(public_key_or_id)
    return kid[:n]


def public_key_to_pem(key: PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM (what the ledger stores)."""
    _kem_of_public(key)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_from_pem(pem: bytes | str) -> PublicKey:
    """Parse a SubjectPublicKeyInfo PEM, or an X.509 certificate PEM (a Fabric enrollment cert)."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509

            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFormatError(f"cannot parse public key PEM: {exc}") from None
    _kem_of_public(key)
    return key  # type: ignore[return-value]


def load_public_key(value: PublicKey | bytes | str) -> PublicKey:
    """A public key from an object, PEM (key or certificate), raw bytes, or hex of raw bytes."""
    if isinstance(value, (x25519.X25519PublicKey, ec.EllipticCurvePublicKey)):
        _kem_of_public(value)
        return value
    if isinstance(value, str):
        if "-----BEGIN" in value:
            return public_key_from_pem(value)
        try:
            return public_key_from_raw(bytes.fromhex(value))
        except ValueError:
            raise KeyFormatError("public key string is neither PEM nor hex of a raw key") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        if b"-----BEGIN" in value:
            return public_key_from_pem(value)
        return public_key_from_raw(value)
    raise KeyFormatError(f"cannot load a public key from {type(value).__name__}")


def private_key_to_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with ``password`` when given."""
    _kem_of_private(key)
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def private_key_from_pem(pem: bytes | str, password: bytes | None = None) -> PrivateKey:
    """Parse a PKCS#8 (or SEC1 EC) private key PEM."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise KeyFormatError(f"cannot parse private key PEM: {exc}") from None
    _kem_of_private(key)
    return key  # type: ignore[return-value]


def private_key_to_raw(key: PrivateKey) -> bytes:
    """32 raw bytes: the X25519 private key, or the P-256 private scalar (big-endian)."""
    if _kem_of_private(key) == KEM_X25519:
        return key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    return key.private_numbers().private_value.to_bytes(32, "big")


def private_key_from_raw(raw: bytes, kind: str = "x25519") -> PrivateKey:
    """Inverse of :func:`private_key_to_raw` (``kind`` is needed: both are 32 bytes)."""
    raw = bytes(raw)
    if len(raw) != 32:
        raise KeyFormatError(f"raw private key must be 32 bytes, got {len(raw)}")
    kind = kind.lower().replace("-", "")
    try:
        if kind == "x25519":
            return x25519.X25519PrivateKey.from_private_bytes(raw)
        if kind in ("p256", "secp256r1", "prime256v1"):
            return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise KeyFormatError(f"invalid raw private key: {exc}") from None
    raise ValueError(f"unknown key kind {kind!r}: use 'x25519' or 'p256'")


# -------------------------------------------------------------------------------------- internals


def _b64e(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _b64d(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeFormatError(f"header field {what} must be a base64 string")
    try:
        out = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise EnvelopeFormatError(f"header field {what} is not valid base64") from None
    if len(out) != length or _b64e(out) != value:
        raise EnvelopeFormatError(f"header field {what} must encode exactly {length} bytes canonically")
    return out


def _check_context(context: object) -> bytes:
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty str, e.g. 'fedcommittee/shard/<model_id>'")
    if len(context) > MAX_CONTEXT_CHARS:
        raise ValueError(f"context longer than {MAX_CONTEXT_CHARS} characters")
    return context.encode("utf-8")


def _ecdh(private: PrivateKey, public: PublicKey) -> bytes:
    try:
        if isinstance(private, x25519.X25519PrivateKey):
            shared = private.exchange(public)  # type: ignore[arg-type]
        else:
            shared = private.exchange(ec.ECDH(), public)  # type: ignore[arg-type]
    except ValueError as exc:  # e.g. a low-order X25519 point
        raise KeyFormatError(f"key agreement failed (invalid public key): {exc}") from None
    if shared == bytes(len(shared)):
        raise KeyFormatError("key agreement gave an all-zero secret (invalid public key)")
    return shared


def _wrap_key(shared: bytes, kem: str, kid: str, epk_raw: bytes, rpk_raw: bytes, ctx: bytes) -> bytes:
    info = b"\x00".join([_LABEL + b"/wrap", kem.encode(), kid.encode(), ctx])
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_LEN, salt=epk_raw + rpk_raw, info=info).derive(shared)


def _wrap_aad(kem: str, kid: str, epk_raw: bytes) -> bytes:
    return b"\x00".join([_LABEL + b"/wrap-aad", kem.encode(), kid.encode()]) + epk_raw


def _key_commitment(content_key: bytes) -> bytes:
    return hmac.new(content_key, _LABEL + b"/key-commitment", hashlib.sha256).digest()


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _unique_keys(keys: Iterable[PublicKey]) -> list[tuple[PublicKey, str, str]]:
    out: list[tuple[PublicKey, str, str]] = []
    seen: set[str] = set()
    for key in keys:
        kem = _kem_of_public(key)
        kid = key_id(key)
        if kid in seen:
            raise ValueError(f"recipient {kid[:16]} is listed twice")
        seen.add(kid)
        out.append((key, kem, kid))
    if not out:
        raise ValueError("at least one recipient is needed")
    if len(out) > MAX_RECIPIENTS:
        raise ValueError(f"more than {MAX_RECIPIENTS} recipients")
    return out


# --------------------------------------------------------------------------------------- sealing


def seal(plaintext: bytes, recipients: list[PublicKey], context: str) -> bytes:
    """Encrypt ``plaintext`` so that each key in ``recipients`` (X25519 or P-256) can open it.

    ``context`` names what the blob is for (e.g. ``"fedcommittee/shard/<model_id>"``); ``open`` must be
    given the same string. Recipients should be the keys *registered on the ledger*: see
    :func:`seal_for_registered`.
    """
    if not isinstance(plaintext, (bytes, bytearray, memoryview)):
        raise TypeError(f"plaintext must be bytes, got {type(plaintext).__name__}")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext larger than {MAX_PLAINTEXT_BYTES} bytes; split it")
    ctx = _check_context(context)
    entries = _unique_keys(recipients)

    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(_NONCE_LEN)
    wrapped = []
    for rpk, kem, kid in entries:
        if kem == KEM_X25519:
            eph: PrivateKey = x25519.X25519PrivateKey.generate()
        else:
            eph = ec.generate_private_key(ec.SECP256R1())
        epk_raw = public_key_to_raw(eph.public_key())
        rpk_raw = public_key_to_raw(rpk)
        shared = _ecdh(eph, rpk)
        wkey = _wrap_key(shared, kem, kid, epk_raw, rpk_raw, ctx)
        wnonce = os.urandom(_NONCE_LEN)
        wk = AESGCM(wkey).encrypt(wnonce, content_key, _wrap_aad(kem, kid, epk_raw))
        wrapped.append({"kem": kem, "kid": kid, "epk": _b64e(epk_raw), "wn": _b64e(wnonce), "wk": _b64e(wk)})

    header = _canonical_json(
        {
            "alg": CONTENT_ALG,
            "ctx": hashlib.sha256(ctx).hexdigest(),
            "kc": _b64e(_key_commitment(content_key)),
            "nonce": _b64e(nonce),
            "r": wrapped,
        }
    )
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError("envelope header too large (too many recipients)")
    prefix = _PREFIX.pack(MAGIC, VERSION, len(header)) + header
    ciphertext = AESGCM(content_key).encrypt(nonce, plaintext, prefix + ctx)
    return prefix + ciphertext


def load_public_keys(registered: Iterable[PublicKey | bytes | str]) -> list[PublicKey]:
    """Parse the public keys registered on the ledger (PEM, certificate PEM, raw or hex).

    Refuses unsupported key types and duplicates, so a malformed registry fails loudly.
    """
    keys = [load_public_key(v) for v in registered]
    _unique_keys(keys)
    return keys


def seal_for_registered(
    plaintext: bytes, registered_public_keys: Iterable[PublicKey | bytes | str], context: str
) -> bytes:
    """:func:`seal` to exactly the keys registered on the ledger (e.g. the round's committee).

    Pass what the ledger returns for the recipients (PEM strings, certificates, raw/hex keys); never
    keys that the requesting party supplied itself.
    """
    return seal(plaintext, load_public_keys(registered_public_keys), context)


# --------------------------------------------------------------------------------------- opening


def _parse(blob: bytes) -> tuple[dict, bytes, memoryview]:
    """Split and validate the envelope structure; return (header, authenticated prefix, ciphertext)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError(f"envelope must be bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    if len(blob) < _PREFIX.size:
        raise EnvelopeFormatError(f"envelope truncated: {len(blob)} bytes is shorter than its prefix")
    magic, version, hlen = _PREFIX.unpack_from(blob)
    if magic != MAGIC:
        raise EnvelopeFormatError(f"not a fedcommittee envelope (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise EnvelopeFormatError(f"unsupported envelope version {version} (this code reads {VERSION})")
    if hlen > MAX_HEADER_BYTES:
        raise EnvelopeFormatError(f"header length {hlen} exceeds {MAX_HEADER_BYTES}")
    end = _PREFIX.size + hlen
    if len(blob) < end + _TAG_LEN:
        raise EnvelopeFormatError(f"envelope truncated: {len(blob)} bytes, header alone needs {end}")
    try:
        header = json.loads(blob[_PREFIX.size : end].decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise EnvelopeFormatError("envelope header is not valid JSON") from None
    if not isinstance(header, dict) or set(header) != {"alg", "ctx", "kc", "nonce", "r"}:
        raise EnvelopeFormatError("envelope header has missing or unexpected fields")
    if header["alg"] != CONTENT_ALG:
        raise EnvelopeFormatError(f"unsupported content algorithm {header['alg']!r}")
    if not isinstance(header["ctx"], str) or len(header["ctx"]) != 64:
        raise EnvelopeFormatError("header field ctx must be a sha256 hex")
    recipients = header["r"]
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise EnvelopeFormatError(f"header field r must list 1..{MAX_RECIPIENTS} recipients")
    kids = set()
    for entry in recipients:
        if not isinstance(entry, dict) or set(entry) != {"kem", "kid", "epk", "wn", "wk"}:
            raise EnvelopeFormatError("malformed recipient entry")
        if entry["kem"] not in _KEMS:
            raise EnvelopeFormatError(f"unsupported key agreement {entry['kem']!r}")
        kid = entry["kid"]
        if not isinstance(kid, str) or len(kid) != 64 or kid.strip("0123456789abcdef"):
            raise EnvelopeFormatError("recipient key id must be 64 lowercase hex characters")
        if kid in kids:
            raise EnvelopeFormatError("recipient key id listed twice")
        kids.add(kid)
    return header, blob[:end], memoryview(blob)[end:]


def is_envelope(data: bytes) -> bool:
    """Whether ``data`` starts like an envelope (magic and version). Says nothing of its validity:
    :func:`open` still checks everything. Weights files (safetensors) never start this way."""
    head = bytes(data[: len(MAGIC) + 1]) if isinstance(data, (bytes, bytearray, memoryview)) else b""
    return head == MAGIC + bytes([VERSION])


def envelope_recipients(blob: bytes) -> list[str]:
    """Key ids (sha256 hex of raw public keys) the envelope is sealed to. Not authenticated on its
    own: a recipient that opens the blob successfully knows the list is genuine."""
    header, _, _ = _parse(blob)
    return [e["kid"] for e in header["r"]]


def check_recipients(blob: bytes, registered_public_keys: Iterable[PublicKey | bytes | str]) -> None:
    """Raise ``EnvelopeError`` unless the envelope is sealed to exactly the registered keys."""
    expected = {key_id(k) for k in load_public_keys(registered_public_keys)}
    actual = set(envelope_recipients(blob))
    if actual != expected:
        missing = sorted(k[:16] for k in expected - actual)
        extra = sorted(k[:16] for k in actual - expected)
        raise EnvelopeError(
            f"envelope recipients differ from the registered keys: missing {missing}, extra {extra}"
        )


def open(blob: bytes, my_private_key: PrivateKey, context: str) -> bytes:  # noqa: A001
    """Decrypt an envelope with one recipient's private key; the context must match :func:`seal`'s.

    Raises :class:`EnvelopeFormatError` (malformed/truncated), :class:`NotARecipient`, or
    :class:`DecryptionError` (wrong context, tampering); never returns unauthenticated bytes.
    """
    ctx = _check_context(context)
    header, prefix, ciphertext = _parse(blob)
    if not hmac.compare_digest(header["ctx"], hashlib.sha256(ctx).hexdigest()):
        raise DecryptionError(f"envelope was sealed for a different context than {context!r}")
    kem = _kem_of_private(my_private_key)
    my_pub = my_private_key.public_key()
    my_kid = key_id(my_pub)
    entry = next((e for e in header["r"] if e["kid"] == my_kid and e["kem"] == kem), None)
    if entry is None:
        raise NotARecipient(my_kid, [e["kid"] for e in header["r"]])

    epk_raw = _b64d(entry["epk"], _X25519_RAW_LEN if kem == KEM_X25519 else _P256_RAW_LEN, "epk")
    wnonce = _b64d(entry["wn"], _NONCE_LEN, "wn")
    wk = _b64d(entry["wk"], _KEY_LEN + _TAG_LEN, "wk")
    nonce = _b64d(header["nonce"], _NONCE_LEN, "nonce")
    kc = _b64d(header["kc"], 32, "kc")
    try:
        epk = public_key_from_raw(epk_raw)
    except KeyFormatError as exc:
        raise DecryptionError(f"bad ephemeral key in envelope: {exc}") from None
    shared = _ecdh(my_private_key, epk)
    wkey = _wrap_key(shared, kem, my_kid, epk_raw, public_key_to_raw(my_pub), ctx)
    try:
        content_key = AESGCM(wkey).decrypt(wnonce, wk, _wrap_aad(kem, my_kid, epk_raw))
    except InvalidTag:
        raise DecryptionError("cannot unwrap the content key: envelope modified or wrong context") from None
    if not hmac.compare_digest(kc, _key_commitment(content_key)):
        raise DecryptionError("key commitment mismatch: envelope is inconsistent across recipients")
    try:
        return AESGCM(content_key).decrypt(nonce, ciphertext, prefix + ctx)
    except InvalidTag:
        raise DecryptionError("authentication failed: envelope modified or wrong context") from None


open_envelope = open
