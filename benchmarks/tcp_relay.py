"""A raw TCP relay in front of a server: bytes copied both ways, no HTTP parsed, one Python
process with one asyncio loop. It is the least any Python front in the request path can cost
on this machine, so `benchmarks.vllm_front` measures it beside inferwatch's proxy: the
distance between the two is what inferwatch itself adds.

    python -m benchmarks.tcp_relay UPSTREAM_HOST UPSTREAM_PORT PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from benchmarks.serving import REPO, free_port

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve(up_host: str, up_port: int, port: int) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(up_host, up_port)
        for w in (writer, up_writer):  # as uvicorn and httpx do: no Nagle delay on small writes
            w.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(connection, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


@contextlib.contextmanager
def relay(base: str) -> Iterator[str]:
    """A relay subprocess in front of `base` (http://host:port), accepting; its base URL."""
    target = urlsplit(base)
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks.tcp_relay", str(target.hostname)]
    proc = subprocess.Popen([*argv, str(target.port), str(port)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the TCP relay did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
