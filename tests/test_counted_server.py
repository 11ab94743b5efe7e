"""The fakes' servers wait for a dead client's last request wherever it is: in the listen
queue, or in a handler still reading it (tests/counted_server.py)."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.counted_server import CountedServer, CountedSocket

REQUEST = b"POST /send HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello"


def _send_and_vanish(port: int) -> None:
    """A client that writes a whole request and is gone before any answer (as after
    SIGKILL: the kernel still delivers what it had written)."""
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(REQUEST)


def test_a_threaded_fake_waits_for_a_request_still_in_the_listen_queue() -> None:
    seen: list[bytes] = []
    reading = threading.Event()
    go_on = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reading.set()
            go_on.wait(10)  # a handler slow to read the body
            seen.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = CountedServer(("127.0.0.1", 0), Handler)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                               daemon=True)
    try:
        _send_and_vanish(server.server_address[1])
        assert not server.settled()  # not accepted yet: the server is not serving
        serving.start()
        assert reading.wait(10)
        assert not server.settled() and seen == []  # accepted, its handler still at work
        go_on.set()
        server.wait_settled(10)
        assert seen == [b"hello"]
    finally:
        go_on.set()
        if serving.is_alive():
            server.shutdown()
        server.server_close()


def test_the_asyncio_proxy_waits_for_a_request_still_in_the_listen_queue() -> None:
    seen: list[bytes] = []
    listener = CountedSocket()
    loop = asyncio.new_event_loop()
    go_on = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            await go_on.wait()
            seen.append(head + await reader.readexactly(5))
        finally:
            writer.close()
            listener.release()

    listener.listen(16)
    _send_and_vanish(listener.getsockname()[1])
    assert not listener.settled()  # in the listen queue: the loop is not running yet
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(serve, sock=listener), loop).result(10)
    try:
        assert not listener.settled() and seen == []  # queued, or accepted and waiting
        loop.call_soon_threadsafe(go_on.set)
        listener.wait_settled(10)
        assert seen == [REQUEST]
    finally:
        server.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
