"""Real webhook receivers for tests: HTTP (and HTTPS) servers in a thread on 127.0.0.1, and a stand-in DNS
for webhook_transport, so names can resolve to them (or anywhere else) as a test needs."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """By default answers 204 and records the POST (headers, body), or answers 503 (recording nothing)
    while `fail_next` > 0. With `respond(handler, body)`, records every POST and lets it answer."""

    def __init__(self, respond: Callable | None = None, *, tls: ssl.SSLContext | None = None):
        self.received: list[tuple[dict, bytes]] = []
        self.fail_next = 0
        self.server_names: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if respond is not None:
                    receiver.received.append((dict(self.headers), body))
                    respond(self, body)
                    return
                status = 204
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    status = 503
                else:
                    receiver.received.append((dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url_for(self, host: str) -> str:
        return self.url.replace("127.0.0.1", host, 1)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeDns:
    """Stands in for the system resolver in webhook_transport: `answers[name]` is a list of addresses,
    or a list of such lists, one per lookup in turn (the last repeats). Counts lookups per name."""

    def __init__(self, answers: dict[str, list]):
        self.answers = answers
        self.lookups: dict[str, int] = {}

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - getaddrinfo's names
        count = self.lookups.get(host, 0)
        self.lookups[host] = count + 1
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = self.answers[host]
        if answer and isinstance(answer[0], list):
            answer = answer[min(count, len(answer) - 1)]
        out = []
        for address in answer:
            ip = ipaddress.ip_address(address)
            family_ = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sockaddr = (address, port, 0, 0) if ip.version == 6 else (address, port)
            out.append((family_, socket.SOCK_STREAM, 6, "", sockaddr))
        return out
