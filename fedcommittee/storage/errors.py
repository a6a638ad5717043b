"""Exception types of the storage layer.

Everything raised on purpose by ``fedcommittee.storage`` derives from :class:`StorageError`, so a caller
can catch the whole family at once; the subclasses say what went wrong and carry the details as
attributes (CID, limit, expected/actual hash, API URL) for logs and error messages.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by ``fedcommittee.storage``."""


# --------------------------------------------------------------------------------------------- IPFS


class InvalidCid(StorageError, ValueError):
    """A string is not a syntactically valid CID (CIDv0 ``Qm...`` or CIDv1 base32 ``b...``)."""

    def __init__(self, cid: object, reason: str) -> None:
        self.cid = cid
        self.reason = reason
        shown = repr(cid) if not isinstance(cid, str) or len(cid) <= 80 else repr(cid[:77] + "...")
        super().__init__(f"invalid CID {shown}: {reason}")


class IpfsError(StorageError):
    """The IPFS (Kubo) RPC API answered with an error.

    ``message`` is Kubo's own ``Message`` field when it sent one, ``code`` its ``Code`` field and
    ``status`` the HTTP status.
    """

    def __init__(
        self,
        endpoint: str,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.message = message
        self.status = status
        self.code = code
        detail = f"HTTP {status}" if status is not None else "no HTTP status"
        if code is not None:
            detail += f", code {code}"
        super().__init__(f"IPFS API {endpoint} failed ({detail}): {message}")


class IpfsUnavailable(IpfsError):
    """The IPFS API could not be reached, or did not answer within the timeout."""

    def __init__(self, api_url: str, endpoint: str, reason: str) -> None:
        self.api_url = api_url
        StorageError.__init__(
            self,
            f"IPFS API at {api_url} is unreachable ({endpoint}): {reason}. "
            "Is the Kubo daemon running and is Addresses.API set to this address?",
        )
        self.endpoint = endpoint
        self.message = reason
        self.status = None
        self.code = None


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the IPFS node could not be asked (down, or cut off mid-answer) rather
    than what it holds: such a read is worth trying again, and proves nothing about the object."""
    return isinstance(exc, IpfsUnavailable) or (isinstance(exc, IpfsError) and exc.status is None)


class ObjectTooLarge(StorageError):
    """An object is larger than the caller's byte limit; it was not read past ``limit + 1`` bytes."""

    def __init__(self, cid: str, limit: int, *, seen: int | None = None) -> None:
        self.cid = cid
        self.limit = limit
        self.seen = seen
        more = f" (read {seen} bytes before stopping)" if seen is not None else ""
        super().__init__(f"object {cid} exceeds the limit of {limit} bytes{more}; refused")


class IntegrityError(StorageError):
    """Fetched bytes do not hash to the sha256 recorded for them (e.g. on the ledger)."""

    def __init__(self, cid: str, expected_sha256: str, actual_sha256: str, size: int) -> None:
        self.cid = cid
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        self.size = size
        super().__init__(
            f"integrity check failed for {cid}: expected sha256 {expected_sha256}, "
            f"got {actual_sha256} over {size} bytes; content refused"
        )


# ----------------------------------------------------------------------------------------- envelope


class EnvelopeError(StorageError):
    """Base class of envelope (encryption) errors. Opening never returns unauthenticated bytes."""


class EnvelopeFormatError(EnvelopeError, ValueError):
    """The blob is not a well-formed envelope (bad magic, unknown version, truncated, bad header)."""


class NotARecipient(EnvelopeError):
    """The envelope holds no wrapped key for the given private key."""

    def __init__(self, key_id: str, recipients: list[str]) -> None:
        self.key_id = key_id
        self.recipients = list(recipients)
        shown = ", ".join(r[:16] for r in self.recipients[:8])
        if len(self.recipients) > 8:
            shown += f", ... ({len(self.recipients)} in all)"
        super().__init__(
            f"key {key_id[:16]} is not a recipient of this envelope (recipients: {shown or 'none'})"
        )


class EncryptedObject(EnvelopeError):
    """An object is a sealed envelope and the reader holds no private key it is sealed to, so it was
    not opened (its sha256 was checked). ``recipients`` are the envelope's key ids (sha256 of each
    recipient's raw public key), ``key_id`` the reader's key id (None: the reader has no key), and
    ``holders`` says in words which identities hold the recipient keys."""

    def __init__(
        self, what: str, recipients: list[str], context: str, *, key_id: str | None = None, holders: str = ""
    ) -> None:
        self.what = what
        self.recipients = list(recipients)
        self.context = context
        self.key_id = key_id
        self.holders = holders
        shown = ", ".join(r[:16] for r in self.recipients[:8])
        if len(self.recipients) > 8:
            shown += f", ... ({len(self.recipients)} in all)"
        mine = (
            "this reader has no private key"
            if key_id is None
            else f"this reader's key {key_id[:16]} is not one of them"
        )
        who = f" ({holders})" if holders else ""
        super().__init__(
            f"{what} is sealed ({context!r}) to {len(self.recipients)} recipient key(s) [{shown}]{who}; "
            f"{mine}: only the private key of one of those identities opens it"
        )


class DecryptionError(EnvelopeError):
    """Authentication failed: wrong context, wrong key, or the envelope was modified."""


class KeyFormatError(EnvelopeError, ValueError):
    """A public or private key could not be parsed, or is of an unsupported type/curve."""
