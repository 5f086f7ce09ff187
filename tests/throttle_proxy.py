"""A test instrument in front of the real registry: forwards every request unchanged, but can
slow blob bodies down (so a pull can be killed midway, or stalls, or trickles), make a blob
longer than its descriptor says, and records the requests it saw (so a test can prove a
resumed pull sent ``Range``).

``bytes_per_second`` paces blob bodies in writes of ``chunk_bytes`` (16 KiB, then a pause of
16384 s at 1 byte/s: a stall; ``chunk_bytes=1``: a trickle). ``prefix`` is sent before a blob's
body, which then has no Content-Length and ends when the connection closes. ``only`` limits
both to the blobs of those digests (default: every blob)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ThrottleProxy:
    def __init__(self, upstream: str, bytes_per_second: int = 0, *, chunk_bytes: int = 16384,
                 prefix: bytes = b"", only: frozenset[str] = frozenset()) -> None:
        self.upstream = upstream
        self.bytes_per_second = bytes_per_second
        self.chunk_bytes = chunk_bytes
        self.prefix = prefix
        self.only = only
        self._closing = threading.Event()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                proxy.requests.append((self.command, self.path, headers))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                blob = "/blobs/" in self.path and (
                    not proxy.only or self.path.rsplit("/", 1)[-1] in proxy.only)
                prefix = proxy.prefix if blob and self.command == "GET" \
                    and resp.status in (200, 206) else b""
                self.send_response(resp.status)
                if prefix:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                for k, v in resp.getheaders():
                    if k.lower() in ("transfer-encoding", "connection"):
                        continue
                    if prefix and k.lower() == "content-length":
                        continue
                    if k.lower() == "location" and v.startswith(f"http://{proxy.upstream}"):
                        v = v.replace(proxy.upstream, proxy.host, 1)
                    self.send_header(k, v)
                self.end_headers()
                throttle = proxy.bytes_per_second and blob
                try:
                    if prefix:
                        self.wfile.write(prefix)
                    while chunk := resp.read(proxy.chunk_bytes if throttle else 1 << 20):
                        self.wfile.write(chunk)
                        if throttle:
                            self.wfile.flush()
                            if proxy._closing.wait(len(chunk) / max(1, proxy.bytes_per_second)):
                                break
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ThrottleProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # ends the pauses of throttled bodies still being sent
        self._server.shutdown()
        self._server.server_close()

    def ranges(self) -> list[str]:
        """The Range headers of the blob requests seen so far."""
        return [h.get("Range", "") for m, p, h in self.requests if "/blobs/" in p and m == "GET"]
