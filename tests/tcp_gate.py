"""A loopback TCP relay in front of a real server, which a test can cut: the
server then seems gone to whoever uses the relay's port (connections
dropped, new ones refused), and `open()` lets them through again on the same
port. The S3 and the broker harnesses put one in front of their servers."""

from __future__ import annotations

import asyncio
import contextlib

from tests.servers import free_port


class TcpGate:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = free_port()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            # A cut (the test closing the relay) ends the copy; so does EOF.
            try:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            finally:
                dst.transport.abort()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:
            # The test's loop is closing: the relay just ends (asyncio's stream
            # callback would log a cancelled handler as an error).
            return
        finally:
            self._writers -= {writer, up_writer}
