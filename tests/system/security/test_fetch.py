"""worker/fetch.py against a real HTTP server on loopback: address policy, redirects, limits."""

import http.server
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from imagebatch.core import errors
from imagebatch.core.config import settings
from imagebatch.core.netguard import BlockedAddress, check_host_name, resolve_public
from imagebatch.worker.fetch import Fetcher, FetchError

BODY = b"\x89PNG fake image bytes" * 100


class _Handler(http.server.BaseHTTPRequestHandler):
    """/img: the body; /to?u=X: 302 to X; /loop: 302 to itself; /host: echoes the Host header."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.paths.append(self.path)
        if self.path == "/img":
            self._send(200, BODY)
        elif self.path.startswith("/to?u="):
            self._redirect(self.path[len("/to?u=") :])
        elif self.path == "/loop":
            self._redirect("/loop")
        elif self.path == "/host":
            self._send(200, self.headers["Host"].encode())
        else:
            self._send(404, b"no")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, where: str) -> None:
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.paths = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    """The worker's downloader, reading the settings each test patches."""
    fetcher = Fetcher(settings)
    yield fetcher
    fetcher.close()


def _category(fetcher: Fetcher, url: str) -> str:
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    return caught.value.category


def test_loopback_is_refused_by_default_before_any_connection(server, fetcher, monkeypatch):
    base, srv = server
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", False)
    port = srv.server_address[1]
    # A literal address, a loopback name, and this machine's own name (which resolves to loopback).
    for url in (
        f"{base}/img",
        f"http://localhost:{port}/img",
        f"http://[::ffff:127.0.0.1]:{port}/img",
        f"http://{socket.gethostname()}:{port}/img",
    ):
        assert _category(fetcher, url) == errors.FORBIDDEN_ADDRESS, url
    assert srv.paths == []  # nothing reached the server


def test_allowed_private_fetch_keeps_the_host_header(server, fetcher, monkeypatch):
    base, srv = server
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    port = srv.server_address[1]
    assert fetcher.fetch(f"{base}/img") == BODY
    # Connected to the resolved IP, yet the server sees the name the URL used.
    assert fetcher.fetch(f"http://localhost:{port}/host") == f"localhost:{port}".encode()


def test_every_redirect_hop_is_checked(server, fetcher, monkeypatch):
    base, srv = server
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    assert fetcher.fetch(f"{base}/to?u=/img") == BODY
    # Metadata addresses stay forbidden even when private addresses are allowed.
    assert _category(fetcher, f"{base}/to?u=http://169.254.169.254/latest/meta-data/") == errors.FORBIDDEN_ADDRESS
    assert _category(fetcher, f"{base}/to?u=http://[fd00:ec2::254]/") == errors.FORBIDDEN_ADDRESS
    assert _category(fetcher, f"{base}/to?u=file:///etc/passwd") == errors.FETCH_FAILED
    monkeypatch.setattr(settings, "FETCH_MAX_REDIRECTS", 3)
    with pytest.raises(FetchError, match="more than 3 redirects"):
        fetcher.fetch(f"{base}/loop")
    assert srv.paths.count("/loop") == 4  # the first request and three redirects, then it stops


def test_size_limit_and_http_errors(server, fetcher, monkeypatch):
    base, _srv = server
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    monkeypatch.setattr(settings, "FETCH_MAX_BYTES", len(BODY) - 1)
    assert _category(fetcher, f"{base}/img") == errors.TOO_LARGE
    assert _category(fetcher, f"{base}/missing") == errors.FETCH_FAILED


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "[::1]",
        "[fd00::1]",
        "[fe80::1]",
        "0.0.0.0",
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "[::ffff:10.0.0.1]",
        "100.64.0.1",
    ],
)
def test_private_host_spellings_are_refused(host):
    with pytest.raises(BlockedAddress):
        check_host_name(host)


def test_public_addresses_pass_and_private_resolution_is_refused():
    check_host_name("8.8.8.8")
    check_host_name("[2606:4700:4700::1111]")
    check_host_name("images.example.com")  # names are judged after DNS, in resolve_public
    assert resolve_public("127.0.0.1", 80, allow_private=True) == ["127.0.0.1"]
    with pytest.raises(BlockedAddress, match="resolves to"):
        resolve_public(socket.gethostname(), 80)  # this machine's own name: loopback or a private address


def test_worker_rechecks_local_paths_against_the_roots(tmp_path, fetcher, monkeypatch):
    """A symlink swapped in under a root after submission must not let the worker read outside it."""
    from imagebatch.worker.preprocess import ImageFailure
    from imagebatch.worker.reader import Reader

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    (root / "photo.jpg").symlink_to(outside / "secret.jpg")
    monkeypatch.setattr(settings, "ALLOWED_ROOTS", str(root))
    with ThreadPoolExecutor(1) as pool:
        reader = Reader(settings, fetcher, pool)
        outcome = reader.read_image(f"file:{root / 'photo.jpg'}", lambda data: pytest.fail("read outside the roots"))
    assert isinstance(outcome, ImageFailure) and outcome.category == errors.NOT_FOUND
    assert "outside the allowed roots" in outcome.message


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/x.jpg",
        "https://[zz]/x.jpg",
        "http://images.example.com:99999/x.jpg",
        "http://images.example.com:abc/x.jpg",
        "http://images.example.com:-1/x.jpg",
        "http://exa\x01mple.com/x.jpg",
    ],
)
def test_a_malformed_url_fails_as_fetch_failed_before_any_connection(fetcher, url):
    """Rows stored before submission checked URLs this strictly: a failure with a category, never a crash."""
    from imagebatch.worker.preprocess import ImageFailure
    from imagebatch.worker.reader import Reader

    with pytest.raises(FetchError, match="not a valid URL") as caught:
        fetcher.fetch(url)
    assert caught.value.category == errors.FETCH_FAILED
    with ThreadPoolExecutor(1) as pool:
        outcome = Reader(settings, fetcher, pool).read_image(url, lambda data: pytest.fail("nothing to decode"))
    assert isinstance(outcome, ImageFailure) and outcome.category == errors.FETCH_FAILED, outcome


@pytest.mark.parametrize("location", ["http://[::1/x.jpg", "http://127.0.0.1:99999/x.jpg", "http://exa mple.com/x"])
def test_a_redirect_to_a_malformed_url_is_fetch_failed(server, fetcher, monkeypatch, location):
    base, _srv = server
    monkeypatch.setattr(settings, "ALLOW_PRIVATE_URLS", True)
    # httpx itself refuses some Location headers (as a protocol error); either way: fetch_failed.
    with pytest.raises(FetchError, match="not a valid URL|Invalid URL in location header") as caught:
        fetcher.fetch(f"{base}/to?u={location}")
    assert caught.value.category == errors.FETCH_FAILED
