"""A TCP proxy on loopback that loses replies: a request goes through, its reply does not.

For the faults a store must survive without knowing their outcome: a command that the
server executed, whose reply the network lost with the connection. While
:attr:`ReplyCuttingProxy.cut_replies` is above zero, the first reply on a connection whose
last request contained :attr:`ReplyCuttingProxy.marker` is dropped and both sides of that
connection are closed (one cut each); everything else is passed on as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib


class ReplyCuttingProxy:
    def __init__(self, port: int, marker: bytes) -> None:
        self.target_port = port
        self.marker = marker
        self.cut_replies = 0  # replies still to lose
        self.cut = 0  # replies lost so far
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        marked = [False]  # the last request on this connection holds the marker

        async def requests() -> None:
            while data := await client_reader.read(65536):
                marked[0] = self.marker in data
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def replies() -> None:
            while data := await server_reader.read(65536):
                if marked[0] and self.cut_replies > 0:
                    self.cut_replies -= 1
                    self.cut += 1
                    client_writer.transport.abort()  # the request went through; its reply is lost
                    server_writer.close()
                    return
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(replies())]
        self._tasks.update(tasks)
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
                self._tasks.discard(task)
            client_writer.close()
            server_writer.close()
