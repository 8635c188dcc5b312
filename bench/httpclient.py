"""A lean HTTP/1.1 GET client over ``asyncio.open_connection``: one keep-alive connection per client.

Only what the history benchmark needs: ``GET`` with a ``Content-Length``
answer (Django's CommonMiddleware sets it), reconnecting when the server
closes. The body is read, not parsed, so the client stays cheap next to the
server.
"""

from __future__ import annotations

import asyncio


class HttpError(Exception):
    """A non-200 answer or a malformed one."""


class Client:
    def __init__(self, port: int, *, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, target: str, within: float | None = None) -> bytes:
        """The body of ``GET target``; raises :class:`HttpError` unless the status is 200."""
        try:
            return await asyncio.wait_for(self._get(target), within or self.timeout)
        except TimeoutError:
            await self.close()  # the answer may still come: this connection is spent
            raise

    async def _get(self, target: str) -> bytes:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        self._writer.write(request.encode())
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" not in headers:
            await self.close()
            raise HttpError(f"no Content-Length in the answer: {lines[0]}")
        body = await self._reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        if status != 200:
            raise HttpError(f"{lines[0]}: {body[:200]!r}")
        return body

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None
