"""Storage layer: a Kubo RPC client, hash-verified content storage, and envelope encryption.

* :mod:`.ipfs` -- :class:`IpfsClient` (add/cat/pin over the Kubo RPC API) and CID validation.
* :mod:`.store` -- :class:`ContentStore`: ``put`` returns (CID, sha256, size) for the ledger, ``get``
  returns bytes only when they match the recorded sha256.
* :mod:`.envelope` -- multi-recipient envelope encryption (AES-256-GCM content, X25519 or P-256
  ECDH + HKDF-SHA256 key wrapping). Use ``envelope.seal`` / ``envelope.open``.
* :mod:`.errors` -- the exception types (all derive from :class:`StorageError`).
"""

from .envelope import generate_keypair, is_envelope, key_id, open_envelope, seal, seal_for_registered
from .errors import (
    DecryptionError,
    EncryptedObject,
    EnvelopeError,
    EnvelopeFormatError,
    IntegrityError,
    InvalidCid,
    IpfsError,
    IpfsUnavailable,
    KeyFormatError,
    NotARecipient,
    ObjectTooLarge,
    StorageError,
)
from .ipfs import IpfsClient, is_valid_cid, validate_cid
from .store import ContentStore, StoredObject, sha256_hex

__all__ = [
    "ContentStore",
    "DecryptionError",
    "EncryptedObject",
    "EnvelopeError",
    "EnvelopeFormatError",
    "IntegrityError",
    "InvalidCid",
    "IpfsClient",
    "IpfsError",
    "IpfsUnavailable",
    "KeyFormatError",
    "NotARecipient",
    "ObjectTooLarge",
    "StorageError",
    "StoredObject",
    "generate_keypair",
    "is_envelope",
    "is_valid_cid",
    "key_id",
    "open_envelope",
    "seal",
    "seal_for_registered",
    "sha256_hex",
    "validate_cid",
]
