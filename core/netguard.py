"""Which network addresses and local paths imagebatch may read from (shared by API and worker)."""

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services; most are link-local or private already, listed so the intent is explicit.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "fd00:ec2::254",
    )
)
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class BlockedAddress(ValueError):
    """A URL or path that policy forbids (private address, outside the allowed roots...)."""


# DNS labels of at most 63 letters, digits, '-' or '_' (as IDNA encodes any other letter), 253 in all.
_HOST_NAME = re.compile(rb"(?=.{1,253}$)[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*\.?")


class InvalidUrl(ValueError):
    """A string that is not a usable http(s) URL; the message reads after the URL ("is not a valid URL (...)")."""


class HttpUrl(NamedTuple):
    scheme: str  # http or https
    host: str  # as urlsplit spells it: lower case, IPv6 without brackets
    port: int  # the default port of the scheme when the URL names none
    authority: str  # host[:port] as written, what the Host header carries


def parse_http_url(url: str) -> HttpUrl:
    """The parts of an http(s) URL, or InvalidUrl saying what is wrong.

    Parsed twice, by urllib (which the address checks use) and by httpx (which connects), and
    refused unless both accept it and agree on the host: a URL two parsers read differently is
    how a check gets pointed at one host and a request at another.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Both hosts as httpx encodes them (IDNA, so 'ümlaut.de' and 'xn--mlaut-jva.de' compare equal).
        parsed = httpx.URL(url)
        _ = parsed.host  # decodes the IDNA labels: an invalid one raises here
        connected = parsed.raw_host.lower()
        checked = httpx.URL(f"http://[{host}]/" if ":" in host else f"http://{host}/").raw_host.lower()
    except (ValueError, httpx.InvalidURL) as exc:  # IDNA errors are UnicodeErrors, hence ValueErrors
        raise InvalidUrl(f"is not a valid URL ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidUrl("is not a valid URL (must be http:// or https://)")
    if not host:
        raise InvalidUrl("has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise InvalidUrl("is not a valid URL (its port must be a number from 1 to 65535)")
    if connected != checked:
        raise InvalidUrl(
            f"is not a valid URL (its host reads as {host!r} and as {connected.decode(errors='replace')!r})"
        )
    if literal_address(host) is None and not _HOST_NAME.fullmatch(connected):
        raise InvalidUrl(f"is not a valid URL ({host!r} is not a host name)")
    authority = parts.netloc.rsplit("@", 1)[-1]
    return HttpUrl(scheme, host, port or (443 if scheme == "https" else 80), authority)


def forbidden_reason(address: IPAddress, *, allow_private: bool = False) -> str | None:
    """Why `address` must not be contacted, or None; metadata addresses are refused even when
    private ones are allowed (no image lives there, credentials do)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback in disguise
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if allow_private:
        return None
    for reason, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return f"a {reason} address"
    if not address.is_global:
        return "not a public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address a URL host spells directly ('[::1]' and '127.0.0.1' included), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_host_name(host: str, *, allow_private: bool = False) -> None:
    """Reject, without DNS, hosts that are private by their spelling alone."""
    name = host.strip("[]").rstrip(".").lower()
    if not allow_private and (name in LOCAL_NAMES or name.endswith(".localhost")):
        raise BlockedAddress(f"{host} is a loopback name")
    address = literal_address(name)
    reason = forbidden_reason(address, allow_private=allow_private) if address is not None else None
    if reason:
        raise BlockedAddress(f"{host} is {reason}")


def resolve_public(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Resolve `host` and return its addresses; BlockedAddress if ANY of them is not public."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from exc
    # An IP sockaddr starts with the address text (typeshed also allows the int of other families).
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for text in addresses:
        reason = forbidden_reason(ipaddress.ip_address(text.split("%", 1)[0]), allow_private=allow_private)
        if reason:
            hint = "" if allow_private else " (IMAGEBATCH_ALLOW_PRIVATE_URLS=true allows private addresses)"
            raise BlockedAddress(f"{host} resolves to {text}, {reason}{hint}")
    return addresses


def within_roots(path: str, roots: list[Path]) -> str:
    """The real path of `path` if it lies under one of `roots` after resolving symlinks and '..'.

    Plain string work after realpath: a 10,000-URI manifest checks every entry, and pathlib's
    parsing cost more than the filesystem lookups.
    """
    real = os.path.realpath(path)
    for root in roots:
        base = str(root)
        if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
            return real
    raise BlockedAddress(f"{path} is outside the allowed roots ({', '.join(map(str, roots)) or 'none'})")
