"""The fakes' HTTP server: it knows when every request a client sent has been handled, the
last one of a client killed with SIGKILL included.

A fake counting only the requests its handler is working on missed two places a dead
client's last request can wait: the listen queue (the server accepts on its next poll) and a
handler thread still reading the request. A test that looked at the fake's log in between
("did this batch arrive?") settled the batch as not sent, resent it, and then the late
request arrived too: one person mailed twice by the test, not by the sender (seed 112350976
of test_sigkill_during_a_send_then_resume[sqlite-mailgun]). CountedServer is the fakes'
threaded server; CountedSocket the listening socket of the SES proxy's asyncio server.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any


class Connections:
    """Connections accepted and not yet closed, counted under the lock that accepts them:
    `settled` sees a connection either in the listen queue or counted, never between the two."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0

    def accepted(self, accept: Any) -> Any:
        """`accept()`, counted."""
        with self.lock:
            connection = accept()
            self.open += 1
        return connection

    def closed(self) -> None:
        with self.lock:
            self.open -= 1

    def settled(self, listening: Any) -> bool:
        """No connection open and none waiting in `listening`'s queue."""
        with self.lock:
            if self.open:
                return False
            waiting, _, _ = select.select([listening], [], [], 0)
            return not waiting


class Settling:
    """What both servers below offer a fake's `wait_idle`."""

    def settled(self) -> bool:
        """No connection open and none waiting to be accepted."""
        raise NotImplementedError

    def wait_settled(self, timeout: float) -> None:
        """Until `settled` (clients that live on keep their persistent connections open:
        this is for a client that has exited or been killed)."""
        deadline = time.monotonic() + timeout
        while not self.settled():
            assert time.monotonic() < deadline, "a client's request is still being handled"
            time.sleep(0.005)


class CountedServer(Settling, ThreadingHTTPServer):
    """A ThreadingHTTPServer that counts each connection from its accept to the end of its
    handler thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any):
        self.connections = Connections()
        super().__init__(address, handler)

    def get_request(self) -> Any:
        return self.connections.accepted(super().get_request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.closed()

    def settled(self) -> bool:
        return self.connections.settled(self.socket)


class CountedSocket(Settling, socket.socket):
    """A listening TCP socket on 127.0.0.1 (for `asyncio.start_server(sock=...)`) that counts
    each connection from its accept until the server calls `release` for it."""

    def __init__(self) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.bind(("127.0.0.1", 0))
        self.connections = Connections()

    def accept(self) -> tuple[socket.socket, Any]:
        return self.connections.accepted(super().accept)

    def release(self) -> None:
        """One accepted connection is closed."""
        self.connections.closed()

    def settled(self) -> bool:
        return self.connections.settled(self)
