"""Safe http(s) downloads: public addresses only, checked on every redirect hop, bounded in time and size."""

import logging
import time
from urllib.parse import urljoin

import httpx

from imagebatch.core import errors
from imagebatch.core.config import Settings
from imagebatch.core.netguard import BlockedAddress, InvalidUrl, check_host_name, parse_http_url, resolve_public

logger = logging.getLogger(__name__)
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """A download that failed for a reason the image's result row records."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def _redirect_target(current: str, location: str) -> str:
    try:
        return urljoin(current, location)
    except ValueError as exc:  # e.g. Location: http://[::1/
        raise FetchError(errors.FETCH_FAILED, f"{current} redirects to {location!r}, which is not a valid URL") from exc


class Fetcher:
    """Downloads under the URL policy of `settings`, through one HTTP client made with it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # No keep-alive: each request connects to the address just validated, and a pooled TLS
        # connection must never be reused for another host name served from the same IP.
        # No proxies from the environment either: a proxy would connect to unvalidated addresses.
        self.client = httpx.Client(
            timeout=settings.FETCH_TIMEOUT,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str) -> bytes:
        """Download `url`, following at most FETCH_MAX_REDIRECTS redirects, re-checking every hop."""
        # FETCH_TIMEOUT bounds each connect/read; a server dripping bytes also meets this overall limit.
        deadline = time.monotonic() + 3 * self.settings.FETCH_TIMEOUT
        current = url
        for _hop in range(self.settings.FETCH_MAX_REDIRECTS + 1):
            request = self._pinned_request(current)
            try:
                response = self.client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        current = _redirect_target(current, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise FetchError(errors.FETCH_FAILED, f"HTTP {response.status_code} from {current}")
                    return self._read_body(response, current, deadline)
                finally:
                    response.close()
            except httpx.HTTPError as exc:
                raise FetchError(errors.FETCH_FAILED, f"{type(exc).__name__} fetching {current}: {exc}") from exc
        raise FetchError(
            errors.FETCH_FAILED,
            f"more than {self.settings.FETCH_MAX_REDIRECTS} redirects from {url} (IMAGEBATCH_FETCH_MAX_REDIRECTS)",
        )

    def _pinned_request(self, url: str) -> httpx.Request:
        """A GET that connects to a validated address of the URL's host, keeping Host and TLS name."""
        if not url.lower().startswith(("http://", "https://")):
            raise FetchError(errors.FETCH_FAILED, f"not an http(s) URL: {url}")
        try:
            parts = parse_http_url(url)
        except InvalidUrl as exc:  # a row stored before submission checked this, or a redirect
            raise FetchError(errors.FETCH_FAILED, f"{url!r} {exc}") from exc
        host = parts.host
        allow = self.settings.ALLOW_PRIVATE_URLS
        try:
            check_host_name(host, allow_private=allow)
            address = resolve_public(host, parts.port, allow_private=allow)[0]
        except BlockedAddress as exc:
            raise FetchError(errors.FORBIDDEN_ADDRESS, f"{url}: {exc}") from exc
        except OSError as exc:
            raise FetchError(errors.FETCH_FAILED, f"{url}: {exc}") from exc
        # Connecting to the address checked above means DNS cannot swap in another between check and use.
        pinned = httpx.URL(url).copy_with(host=address)
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        headers = {"Host": parts.authority}
        return self.client.build_request("GET", pinned, headers=headers, extensions=extensions)

    def _read_body(self, response: httpx.Response, url: str, deadline: float) -> bytes:
        limit = self.settings.FETCH_MAX_BYTES
        too_big = f"download is larger than {limit} bytes (IMAGEBATCH_FETCH_MAX_BYTES)"
        if int(response.headers.get("content-length") or 0) > limit:
            raise FetchError(errors.TOO_LARGE, too_big)
        body = bytearray()
        for block in response.iter_bytes():
            body += block
            if len(body) > limit:
                raise FetchError(errors.TOO_LARGE, too_big)
            if time.monotonic() > deadline:
                raise FetchError(errors.FETCH_FAILED, f"download of {url} took too long (IMAGEBATCH_FETCH_TIMEOUT)")
        return bytes(body)
