"""IpfsClient against small local HTTP stubs (the real Kubo is exercised in tests/integration)."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from fedcommittee.storage.errors import InvalidCid, IpfsError, IpfsUnavailable, ObjectTooLarge
from fedcommittee.storage.ipfs import IpfsClient

CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_POST(self):  # noqa: N802
        url = urlsplit(self.path)
        self.server.requests.append(
            {
                "path": url.path,
                "query": parse_qs(url.query),
                "headers": dict(self.headers),
                "body": self._body(),
            }
        )
        self.server.behaviour(self, url.path, parse_qs(url.query))


def send(handler, status, body: bytes, content_type="application/json"):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    server.daemon_threads = True
    server.requests = []
    server.behaviour = lambda h, path, q: send(h, 404, b"404 page not found", "text/plain")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_closed_port_fails_fast_with_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with pytest.raises(IpfsUnavailable) as info:
        IpfsClient(url, timeout=2).id()
    assert time.monotonic() - start < 2 + 1
    assert url in str(info.value)
    assert "unreachable" in str(info.value)
    assert isinstance(info.value, IpfsError)


def test_stalled_api_times_out():
    # A socket that accepts connections (kernel backlog) but never answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(IpfsUnavailable, match="no answer within 1s") as info:
            IpfsClient(url, timeout=1).version()
        assert time.monotonic() - start < 1 + 1.5
        assert url in str(info.value)


def test_kubo_error_message_is_surfaced(stub):
    stub.behaviour = lambda h, p, q: send(
        h, 500, json.dumps({"Message": "merkledag: not found", "Code": 0, "Type": "error"}).encode()
    )
    with pytest.raises(IpfsError) as info:
        IpfsClient(stub.url, timeout=5).pin(CID)
    err = info.value
    assert err.message == "merkledag: not found"
    assert err.status == 500 and err.code == 0
    assert "pin/add" in str(err) and "merkledag: not found" in str(err)
    assert not isinstance(err, IpfsUnavailable)


def test_a_daemon_shutting_down_is_unavailable_not_a_content_error(stub):
    """Kubo answers HTTP 500 "cannot access config, repo not open" once it has closed its repo on the
    way down: the agents wait for the node instead of taking it for an error of the object."""
    stub.behaviour = lambda h, p, q: send(
        h, 500, json.dumps({"Message": "cannot access config, repo not open", "Code": 0}).encode()
    )
    with pytest.raises(IpfsUnavailable, match="repo not open") as info:
        IpfsClient(stub.url, timeout=5).add(b"x")
    assert info.value.endpoint == "add" and stub.url in str(info.value)


def test_non_json_error_is_surfaced(stub):
    with pytest.raises(IpfsError, match="404 page not found"):
        IpfsClient(stub.url, timeout=5).id()


def test_add_request_shape(stub):
    stub.behaviour = lambda h, p, q: send(
        h, 200, json.dumps({"Name": "blob", "Hash": CID, "Size": "11"}).encode() + b"\n"
    )
    data = b"hello world" * 300_000  # several upload chunks
    assert IpfsClient(stub.url, timeout=5).add(data) == CID
    req = stub.requests[-1]
    assert req["path"] == "/api/v0/add"
    assert req["query"]["pin"] == ["true"]
    assert req["query"]["cid-version"] == ["1"]
    assert req["query"]["raw-leaves"] == ["true"]
    assert req["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"' in req["body"]
    assert data in req["body"]
    IpfsClient(stub.url, timeout=5).add(b"x", pin=False)
    assert stub.requests[-1]["query"]["pin"] == ["false"]


def test_add_refuses_a_bad_cid_in_the_answer(stub):
    stub.behaviour = lambda h, p, q: send(h, 200, b'{"Name":"blob","Hash":"evil?arg=x","Size":"1"}\n')
    with pytest.raises(InvalidCid):
        IpfsClient(stub.url, timeout=5).add(b"x")


def test_cat_asks_for_limit_plus_one(stub):
    stub.behaviour = lambda h, p, q: send(h, 200, b"hello", "text/plain")
    assert IpfsClient(stub.url, timeout=5).cat(CID, 100) == b"hello"
    assert stub.requests[-1]["query"] == {"arg": [CID], "length": ["101"]}


def test_cat_stops_reading_an_endless_stream(stub):
    sent = {"bytes": 0}

    def endless(handler, path, query):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"z" * 65536
        try:
            while sent["bytes"] < 1 << 30:  # would be 1 GiB
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent["bytes"] += len(chunk)
        except OSError:
            pass

    stub.behaviour = endless
    start = time.monotonic()
    with pytest.raises(ObjectTooLarge) as info:
        IpfsClient(stub.url, timeout=5).cat(CID, 100_000)
    assert time.monotonic() - start < 5
    assert info.value.limit == 100_000
    assert info.value.seen is not None and info.value.seen <= 100_000 + (2 << 20)
    time.sleep(0.2)
    assert sent["bytes"] < 64 << 20


def test_cat_refuses_declared_oversize(stub):
    def declared(handler, path, query):
        handler.send_response(200)
        handler.send_header("X-Content-Length", "5000")
        handler.send_header("Content-Length", "5000")
        handler.end_headers()
        handler.wfile.write(b"a" * 5000)

    stub.behaviour = declared
    with pytest.raises(ObjectTooLarge):
        IpfsClient(stub.url, timeout=5).cat(CID, 4999)


def test_invalid_cid_is_not_sent(stub):
    client = IpfsClient(stub.url, timeout=5)
    for call in (lambda: client.cat("bad", 10), lambda: client.pin("bad"), lambda: client.unpin("Qm")):
        with pytest.raises(InvalidCid):
            call()
    assert stub.requests == []


def test_is_pinned(stub):
    def answer(handler, path, query):
        if query["arg"] == [CID]:
            send(handler, 200, json.dumps({"Keys": {CID: {"Type": "recursive"}}}).encode())
        else:
            send(handler, 500, b'{"Message":"path \'x\' is not pinned","Code":0,"Type":"error"}')

    stub.behaviour = answer
    client = IpfsClient(stub.url, timeout=5)
    assert client.is_pinned(CID)
    assert not client.is_pinned("bafkqaaa")


def test_url_forms():
    assert IpfsClient("/ip4/127.0.0.1/tcp/5001").api_url == "http://127.0.0.1:5001"
    assert IpfsClient("http://127.0.0.1:5001/").api_url == "http://127.0.0.1:5001"
    for bad in ("127.0.0.1:5001", "ftp://x", ""):
        with pytest.raises(ValueError):
            IpfsClient(bad)
    with pytest.raises(ValueError):
        IpfsClient("http://127.0.0.1:5001", timeout=0)


def test_proxy_environment_is_ignored(monkeypatch, stub):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    stub.behaviour = lambda h, p, q: send(h, 200, b'{"Version":"0.42.0"}')
    assert IpfsClient(stub.url, timeout=5).version()["Version"] == "0.42.0"


def test_non_loopback_api_is_warned_about(caplog):
    with caplog.at_level("WARNING", logger="fedcommittee.storage.ipfs"):
        IpfsClient("http://10.1.2.3:5001")
    assert "not on loopback" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fedcommittee.storage.ipfs"):
        IpfsClient("http://localhost:5001")
        IpfsClient("http://[::1]:5001")
    assert caplog.text == ""
