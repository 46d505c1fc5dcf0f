"""A tiny HTTP/1.1 server for `/` (status page), `/api/status`, `/metrics` and `/healthz`.

GET only, one request per connection, bounded request size: enough for Prometheus, a
browser on the installer's phone and systemd health checks, with no dependency.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from importlib import resources
from typing import Any

MAX_REQUEST = 8192
Route = Callable[[], tuple[int, str, bytes]]


def status_page() -> bytes:
    return resources.files("meterlink.edge").joinpath("status_page.html").read_bytes()


def json_response(data: Any, code: int = 200) -> tuple[int, str, bytes]:
    return code, "application/json", json.dumps(data, default=str).encode()


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           500: "Internal Server Error", 503: "Service Unavailable"}


class HttpServer:
    def __init__(self, host: str, port: int, routes: dict[str, Route]) -> None:
        self.host = host
        self.port = port
        self.routes = routes
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            code, ctype, body = self._route(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            code, ctype, body = 400, "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {code} {REASONS.get(code, 'OK')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _route(self, head: bytes) -> tuple[int, str, bytes]:
        if len(head) > MAX_REQUEST:
            return 400, "text/plain", b"request too large\n"
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            return 400, "text/plain", b"bad request line\n"
        method, target, _ = parts
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        route = self.routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, "text/plain", b"not found: try /, /api/status, /metrics, /healthz\n"
        try:
            return route()
        except Exception as exc:  # a broken view must not take the server down
            return 500, "text/plain", f"error: {exc}\n".encode()
