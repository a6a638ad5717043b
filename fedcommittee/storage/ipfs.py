"""A thin client for the Kubo (go-ipfs) RPC API, over ``requests``.

``ipfshttpclient`` refuses daemons >= 0.8, so this module talks to the documented HTTP RPC API
directly. Every call is a POST to ``<api_url>/api/v0/<command>``; Kubo reports failures as HTTP 500
with a JSON body ``{"Message": ..., "Code": ..., "Type": "error"}`` whose message is surfaced in
:class:`~fedcommittee.storage.errors.IpfsError`.

The API grants full control over the node, so it must listen on loopback only (see the design's
*Security and privacy* section). The client ignores proxy environment variables for the same reason.

Objects are added as CIDv1 with raw leaves and sha2-256, so a CID is ``bafk...`` (single raw block) or
``bafy...`` (a dag-pb file of several blocks). :meth:`IpfsClient.cat` enforces a byte limit while
streaming and stops reading once it is exceeded. It does *not* check content against a hash the
caller trusts: use :class:`~fedcommittee.storage.store.ContentStore` for that.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from .errors import InvalidCid, IpfsError, IpfsUnavailable, ObjectTooLarge

__all__ = ["IpfsClient", "validate_cid", "is_valid_cid", "DEFAULT_API_URL"]

log = logging.getLogger(__name__)

DEFAULT_API_URL = "http://127.0.0.1:5001"

# Kubo's answer while its daemon shuts down, once it has closed its repo (kubo repo/fsrepo,
# ``FSRepo.Config``). Seen in the IPFS fault drill: a provider's upload in the moment the node
# was stopped got it as HTTP 500 and, taken for a content error, crashed its agent.
REPO_CLOSED = "repo not open"

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}
_CIDV0_RE = re.compile(r"Qm[1-9A-HJ-NP-Za-km-z]{44}")
_CIDV1_B32_RE = re.compile(r"b[a-z2-7]+")
_MAX_CID_CHARS = 512
_SHA2_256 = 0x12
_IDENTITY = 0x00
_UPLOAD_CHUNK = 1 << 20
_DOWNLOAD_CHUNK = 1 << 20


# ------------------------------------------------------------------------------------- CID syntax


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 varint (multiformats rules: at most 9 bytes, minimally encoded)."""
    value = 0
    for i in range(9):
        if pos + i >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i > 0 and byte == 0:
                raise ValueError("varint is not minimally encoded")
            return value, pos + i + 1
    raise ValueError("varint longer than 9 bytes")


def _b58decode(s: str) -> bytes:
    n = 0
    for c in s:
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    leading = len(s) - len(s.lstrip("1"))
    return b"\x00" * leading + body


def _check_multihash(mh: bytes) -> None:
    code, pos = _read_varint(mh, 0)
    length, pos = _read_varint(mh, pos)
    digest = mh[pos:]
    if len(digest) != length:
        raise ValueError(f"multihash declares a {length}-byte digest but holds {len(digest)} bytes")
    if code == _SHA2_256 and length != 32:
        raise ValueError("sha2-256 multihash must have a 32-byte digest")
    if code != _IDENTITY and length == 0:
        raise ValueError("empty multihash digest")


def validate_cid(cid: object) -> str:
    """Return ``cid`` if it is a syntactically valid CID, else raise :class:`InvalidCid`.

    Accepted: CIDv0 (``Qm`` + 44 base58btc characters, a sha2-256 multihash) and CIDv1 in lowercase
    base32 (multibase prefix ``b``; version 1, a codec and a well-formed multihash). Other multibases
    (``z...``, upper-case ``B...``) are refused: Kubo emits base32 for CIDv1, and one canonical spelling
    per object keeps ledger records comparable.
    """
    if not isinstance(cid, str):
        raise InvalidCid(cid, f"expected str, got {type(cid).__name__}")
    if not cid:
        raise InvalidCid(cid, "empty string")
    if len(cid) > _MAX_CID_CHARS:
        raise InvalidCid(cid, f"longer than {_MAX_CID_CHARS} characters")
    if cid.startswith("Qm"):
        if not _CIDV0_RE.fullmatch(cid):
            raise InvalidCid(cid, "CIDv0 must be 'Qm' followed by 44 base58btc characters")
        raw = _b58decode(cid)
        if len(raw) != 34 or raw[0] != _SHA2_256 or raw[1] != 32:
            raise InvalidCid(cid, "CIDv0 does not decode to a 32-byte sha2-256 multihash")
        return cid
    if cid.startswith("b"):
        if not _CIDV1_B32_RE.fullmatch(cid):
            raise InvalidCid(cid, "CIDv1 must be lowercase base32 (a-z, 2-7) after the 'b' prefix")
        body = cid[1:]
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise InvalidCid(cid, f"bad base32: {exc}") from None
        # Reject non-canonical spellings (non-zero padding bits, impossible lengths).
        if base64.b32encode(raw).decode().rstrip("=").lower() != body:
            raise InvalidCid(cid, "non-canonical base32 encoding")
        try:
            version, pos = _read_varint(raw, 0)
            if version != 1:
                raise ValueError(f"CID version {version} (expected 1)")
            _codec, pos = _read_varint(raw, pos)
            _check_multihash(raw[pos:])
        except ValueError as exc:
            raise InvalidCid(cid, str(exc)) from None
        return cid
    raise InvalidCid(cid, "expected a CIDv0 ('Qm...') or a base32 CIDv1 ('b...')")


def is_valid_cid(cid: object) -> bool:
    """True when :func:`validate_cid` accepts ``cid``."""
    try:
        validate_cid(cid)
    except InvalidCid:
        return False
    return True


# ------------------------------------------------------------------------------------------ client


def _normalise_api_url(api_url: str) -> str:
    """Accept ``http://host:port`` or a multiaddr ``/ip4/<ip>/tcp/<port>`` (Kubo's Addresses.API)."""
    api_url = api_url.strip()
    m = re.fullmatch(r"/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(?:/http)?/?", api_url)
    if m:
        host = f"[{m.group(2)}]" if m.group(1) == "ip6" else m.group(2)
        api_url = f"http://{host}:{m.group(3)}"
    parts = urlsplit(api_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"IPFS API URL must look like http://127.0.0.1:5001, got {api_url!r}")
    return api_url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IpfsClient:
    """Client for one Kubo node's RPC API.

    ``timeout`` (seconds) bounds the connection set-up and every wait for the next bytes of an answer
    (it is the ``requests`` read timeout, not a bound on a whole large transfer). ``connect_timeout``
    defaults to ``min(timeout, 5)``: a local daemon accepts at once or not at all.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 60.0,
        *,
        connect_timeout: float | None = None,
        session: requests.Session | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.api_url = _normalise_api_url(api_url)
        host = urlsplit(self.api_url).hostname or ""
        if not _is_loopback(host):
            log.warning(
                "IPFS API %s is not on loopback: the design keeps the Kubo API local only", self.api_url
            )
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout) if connect_timeout else min(self.timeout, 5.0)
        self._session = session or requests.Session()
        # The API is local: never route it through an HTTP(S)_PROXY from the environment.
        self._session.trust_env = False

    def __repr__(self) -> str:
        return f"IpfsClient({self.api_url!r}, timeout={self.timeout})"

    def __enter__(self) -> IpfsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # --------------------------------------------------------------------------------- plumbing

    def _post(
        self,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        url = f"{self.api_url}/api/v0/{command}"
        try:
            resp = self._session.post(
                url,
                params=params,
                data=data,
                headers=headers,
                stream=stream,
                timeout=(self.connect_timeout, self.timeout),
            )
        except requests.exceptions.ConnectTimeout:
            raise IpfsUnavailable(
                self.api_url, command, f"no connection within {self.connect_timeout:g}s"
            ) from None
        except requests.exceptions.ReadTimeout:
            raise IpfsUnavailable(self.api_url, command, f"no answer within {self.timeout:g}s") from None
        except requests.exceptions.ConnectionError as exc:
            raise IpfsUnavailable(self.api_url, command, _short_reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise IpfsError(command, f"request failed: {exc}") from None
        if resp.status_code != 200:
            try:
                err = _api_error(command, resp)
            finally:
                resp.close()
            if REPO_CLOSED in err.message:  # the daemon is shutting down: as good as unreachable
                raise IpfsUnavailable(self.api_url, command, err.message)
            raise err
        return resp

    def _post_json(self, command: str, params: dict[str, Any] | None = None) -> Any:
        resp = self._post(command, params)
        try:
            return resp.json()
        except ValueError:
            raise IpfsError(command, f"answer is not JSON: {resp.text[:200]!r}", status=200) from None

    # ------------------------------------------------------------------------------------ API

    def add(self, data: bytes, pin: bool = True) -> str:
        """Store ``data`` as one file; return its CIDv1 (raw leaves, sha2-256)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        params = {
            "pin": "true" if pin else "false",
            "cid-version": "1",
            "raw-leaves": "true",
            "hash": "sha2-256",
            "progress": "false",
        }
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        view = memoryview(data).cast("B")

        def body() -> Iterator[bytes | memoryview]:
            yield head
            for start in range(0, len(view), _UPLOAD_CHUNK):
                yield view[start : start + _UPLOAD_CHUNK]
            yield tail

        resp = self._post(
            "add",
            params,
            data=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        cid = None
        for line in resp.text.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise IpfsError("add", f"unexpected answer line {line[:200]!r}", status=200) from None
            if isinstance(entry, dict) and entry.get("Hash"):
                cid = entry["Hash"]
        if cid is None:
            raise IpfsError("add", f"answer holds no CID: {resp.text[:200]!r}", status=200)
        return validate_cid(cid)

    def cat(self, cid: str, max_bytes: int) -> bytes:
        """Return the content of ``cid``; raise :class:`ObjectTooLarge` past ``max_bytes``.

        The daemon is asked for at most ``max_bytes + 1`` bytes and the stream is abandoned as soon as
        more than ``max_bytes`` have arrived, so an oversized object is never read in full. The bytes
        are NOT verified against any trusted hash here (a stream cut short by the daemon cannot always
        be told from a short file): use ``ContentStore.get`` for anything that is acted on.
        """
        validate_cid(cid)
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative int, got {max_bytes!r}")
        resp = self._post("cat", {"arg": cid, "length": str(max_bytes + 1)}, stream=True)
        declared = resp.headers.get("X-Content-Length")
        buf = bytearray()
        try:
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ObjectTooLarge(cid, max_bytes)
            for chunk in resp.iter_content(chunk_size=_DOWNLOAD_CHUNK):
                buf += chunk
                if len(buf) > max_bytes:
                    raise ObjectTooLarge(cid, max_bytes, seen=len(buf))
        except requests.exceptions.ReadTimeout:
            raise IpfsUnavailable(self.api_url, "cat", f"stream stalled for {self.timeout:g}s") from None
        except requests.exceptions.RequestException as exc:
            raise IpfsError("cat", f"stream broken after {len(buf)} bytes: {_short_reason(exc)}") from None
        finally:
            resp.close()
        return bytes(buf)

    def pin(self, cid: str) -> None:
        """Pin ``cid`` recursively, so garbage collection keeps it."""
        self._post_json("pin/add", {"arg": validate_cid(cid), "recursive": "true"})

    def unpin(self, cid: str) -> None:
        """Remove the recursive pin of ``cid`` (Kubo's error is raised if it is not pinned)."""
        self._post_json("pin/rm", {"arg": validate_cid(cid), "recursive": "true"})

    def is_pinned(self, cid: str) -> bool:
        """True when ``cid`` is pinned (recursively, directly, or indirectly through a pinned parent)."""
        try:
            answer = self._post_json("pin/ls", {"arg": validate_cid(cid), "type": "all"})
        except IpfsUnavailable:
            raise
        except IpfsError as exc:
            if "not pinned" in exc.message:
                return False
            raise
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        # Any pin type (recursive, direct, "indirect through <cid>") keeps the object from GC.
        return bool(keys)

    def id(self) -> dict[str, Any]:
        """The node's identity (``ID``, ``PublicKey``, ``Addresses``, ``AgentVersion``...)."""
        return self._post_json("id")

    def version(self) -> dict[str, Any]:
        """Kubo's version information (``Version``, ``Commit``, ``Repo``, ``System``, ``Golang``)."""
        return self._post_json("version")

    def repo_gc(self) -> int:
        """Run garbage collection; return the number of blocks removed."""
        resp = self._post("repo/gc", {"quiet": "true"}, stream=True)
        removed = 0
        try:
            for line in resp.iter_lines():
                if not line:
                    continue
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("Error"):
                    raise IpfsError("repo/gc", str(entry["Error"]), status=200)
                removed += 1
        finally:
            resp.close()
        return removed


def _api_error(command: str, resp: requests.Response) -> IpfsError:
    message = None
    code = None
    try:
        body = resp.json()
        if isinstance(body, dict):
            message = body.get("Message")
            code = body.get("Code") if isinstance(body.get("Code"), int) else None
    except ValueError:
        pass
    if not message:
        message = (resp.text or resp.reason or "").strip()[:500] or "(empty answer)"
    return IpfsError(command, str(message), status=resp.status_code, code=code)


def _short_reason(exc: BaseException) -> str:
    """The innermost, most readable reason in a requests/urllib3 exception chain."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker
    return text[:300]
