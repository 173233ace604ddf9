"""HTTP to URLs market makers choose: never into the issuer's own networks, never for longer than a
deadline, never reading more than a capped response, never following a redirect.

Where a URL may point is checked twice: when the endpoint is registered, and at every delivery on the
addresses its name resolves to *then*, because DNS can change in between (DNS rebinding). The check
and the connection cannot be separated either: the connection goes to the very address that was
checked, with the URL's host name in the Host header and as the TLS server name (SNI), so the
certificate is still verified against the name and a second lookup never gets a say.

The deadline covers everything (resolving, connecting, the TLS handshake, sending, reading the status
line, headers and body), not each read: a receiver dripping one byte a second is cut off when the
deadline passes, by a timer that shuts the socket down under whatever read is waiting.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import certifi
from django.conf import settings

from config.api import DomainError

MAX_URL_LENGTH = 500
_READ_CHUNK = 8192
# Cloud instance metadata services: refused whatever WEBHOOK_ALLOWED_PRIVATE_NETWORKS admits.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
    "169.254.170.2",  # AWS ECS task metadata
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_resolver_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")
_getaddrinfo = socket.getaddrinfo  # the system resolver (tests stand in their own DNS)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(DomainError):
    code = "invalid_webhook_url"
    http_status = 400


class DeadlineExceeded(Exception):
    pass


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA), lower case, no brackets
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str  # "" when a response arrived; what went wrong otherwise

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_url(url: str) -> Target:
    """The URL's parts, or UrlRefused: https only (http too where WEBHOOK_ALLOW_HTTP), no credentials."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"a webhook URL is an https URL of at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused("not a valid URL") from None
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme.lower() not in allowed:
        raise UrlRefused("webhook URLs must use https")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("a webhook URL must not carry credentials")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused("a webhook URL needs a host")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise UrlRefused("the URL's host is not a valid name") from None
    scheme = parts.scheme.lower()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ch in path for ch in "\r\n "):
        raise UrlRefused("the URL's path holds spaces or line breaks")
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


@lru_cache(maxsize=32)
def _allowed_networks(networks: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n) for n in networks)


def address_refusal(address: Address) -> str | None:
    """Why a webhook may not be sent to this address, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
                                           if address in _NAT64 else None)
        if embedded is not None:  # ::ffff:a.b.c.d and 64:ff9b::a.b.c.d reach a.b.c.d
            return address_refusal(embedded)
        if address.sixtofour is not None and address_refusal(address.sixtofour) is not None:
            return "a 6to4 address of a refused IPv4 address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _allowed_networks(tuple(settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS))):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(target: Target, *, timeout_s: float) -> list[Address]:
    """Every address the host resolves to (the host itself if it is an IP literal)."""
    literal = _literal(target.host)
    if literal is not None:
        return [literal]
    # getaddrinfo has no timeout of its own; a lookup left running past ours finishes unheeded.
    future = _resolver_pool.submit(_getaddrinfo, target.host, target.port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=max(timeout_s, 0.001))
    except concurrent.futures.TimeoutError:
        raise DeadlineExceeded from None
    except OSError:
        raise UrlRefused(f"{target.host} does not resolve") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlRefused(f"{target.host} does not resolve")
    return addresses


def checked_addresses(target: Target, *, timeout_s: float) -> list[Address]:
    """The host's addresses, each one allowed; UrlRefused naming the first that is not."""
    addresses = resolve(target, timeout_s=timeout_s)
    for address in addresses:
        reason = address_refusal(address)
        if reason is not None and _literal(target.host) is not None:
            raise UrlRefused(f"{target.host} is {reason}")
        if reason is not None:
            raise UrlRefused(f"{target.host} resolves to {address}, {reason}")
    return addresses


def check_url(url: str, *, timeout_s: float = 5.0) -> Target:
    """Registration: the URL's form and every address it resolves to now."""
    target = parse_url(url)
    try:
        checked_addresses(target, timeout_s=timeout_s)
    except DeadlineExceeded:
        raise UrlRefused(f"{target.host} did not resolve in time") from None
    return target


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """Certificates verified against the URL's host name, with the CA bundle requests uses."""
    return ssl.create_default_context(cafile=certifi.where())


class _Watchdog:
    """Shuts the connection down at the deadline, under whatever blocking call is waiting on it."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.fired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(deadline - time.monotonic(), 0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor of the same socket: shutting it down ends the connection for the TLS
        # layer too, without touching the SSLSocket object another thread is using.
        with self._lock:
            if self._sock is not None:
                self._sock.close()
            self._sock = sock.dup()
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.fired:
            raise DeadlineExceeded
        return left

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


class _PinnedConnection(http.client.HTTPSConnection):
    """Connects to one given address; the Host header and TLS server name stay the URL's host."""

    def __init__(self, target: Target, address: Address, watchdog: _Watchdog):
        super().__init__(target.host, target.port, timeout=watchdog.remaining(), context=tls_context())
        self._target = target
        self._address = address
        self._watchdog = watchdog

    def connect(self) -> None:
        sock = socket.create_connection((str(self._address), self.port), timeout=self._watchdog.remaining())
        self._watchdog.watch(sock)
        sock.settimeout(self._watchdog.remaining())
        if self._target.scheme == "https":
            sock = self._context.wrap_socket(sock, server_hostname=self._target.host)
        # Kept past getresponse(), which hands a closing connection's socket over to the response.
        self.sock = self.pinned_sock = sock


def _drain(response: http.client.HTTPResponse, sock: socket.socket, watchdog: _Watchdog, cap: int) -> None:
    """Read (and drop) at most `cap` bytes of the body, within the deadline. The status is the answer:
    a body cut short by the cap or the deadline changes nothing."""
    received = 0
    try:
        while received < cap and not response.isclosed():
            sock.settimeout(watchdog.remaining())
            chunk = response.read1(min(_READ_CHUNK, cap - received))
            if not chunk:
                return
            received += len(chunk)
    except (OSError, http.client.HTTPException, DeadlineExceeded):
        return


def post(url: str, *, body: bytes, headers: dict[str, str], deadline_s: float,
         max_response_bytes: int) -> Outcome:
    """POST once. Never raises for anything the receiver or the network does: the outcome says."""
    started = time.monotonic()
    watchdog = _Watchdog(started + deadline_s)
    connection: _PinnedConnection | None = None
    response: http.client.HTTPResponse | None = None
    try:
        target = parse_url(url)
        addresses = checked_addresses(target, timeout_s=watchdog.remaining())
        for index, address in enumerate(addresses):
            connection = _PinnedConnection(target, address, watchdog)
            try:
                connection.connect()
                break
            except OSError:
                connection.close()
                if index == len(addresses) - 1 or watchdog.fired:
                    raise
        assert connection is not None
        connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", target.host_header)
        for name, value in {**headers, "Content-Length": str(len(body)), "Connection": "close"}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        connection.pinned_sock.settimeout(watchdog.remaining())
        response = connection.getresponse()
        if watchdog.fired:  # the headers were cut off by the deadline: no answer
            raise DeadlineExceeded
        _drain(response, connection.pinned_sock, watchdog, max_response_bytes)
        return Outcome(status_code=response.status, error="")
    except UrlRefused as exc:
        return Outcome(status_code=None, error=f"refused: {exc.message}")
    except DeadlineExceeded:
        return Outcome(status_code=None, error=f"no answer within {deadline_s:g} s")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if watchdog.fired:
            return Outcome(status_code=None, error=f"no answer within {deadline_s:g} s")
        return Outcome(status_code=None, error=type(exc).__name__)
    finally:
        watchdog.close()
        if response is not None:
            response.close()
        if connection is not None:
            connection.close()
            if getattr(connection, "pinned_sock", None) is not None:
                connection.pinned_sock.close()
