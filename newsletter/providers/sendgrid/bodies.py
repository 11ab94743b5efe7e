"""SendGrid request bodies, built in a second process once a send runs to several batches.

A send keeps up to eight requests of 1000 recipients in flight; against answers that take
300 ms that is a body every 37 ms. Building one (two signed links per recipient, the
personalizations, the JSON) is the largest share of the sending process's work, and under one
GIL it competes with reading the ledger, recording outcomes and the HTTP client: one process
managed about 14,000 recipients/s (docs/performance.md, "Dispatch"). `Bodies` hands a batch's
recipients (plain tuples) to a child process that holds a `PayloadBuilder` for the mailing and
gets the request's bytes back, the same bytes `PayloadBuilder.request()` makes.

What stays in the sending process: the ledger (each batch's hand-over and outcomes), the HTTP
requests and the decision what to send, so exactly-once does not depend on the child. The
child only computes; it is spawned fresh (it inherits no threads, locks or database
connections), ignores Ctrl-C (the send's own handling ends the run after the batches in
flight, whose bodies may still be building), and exits when the send closes the transport or
its pipe to the sending process closes (the send ended, or was killed).

The first batch is built in the sending process: a send of one batch (a test send, a small
list) never starts a child. The child is started with the second batch and used once it has
said it is ready; until then, and for good if it dies, cannot be started or takes over
ANSWER_WITHIN over a body, bodies are built in the sending process as before. An error of the
builder itself (an address twice in a batch) is raised in the sending process as if the body
had been built there.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from newsletter.core.personalise import Recipient
from newsletter.providers.mailing import Item, Mailing
from newsletter.providers.sendgrid.payload import PayloadBuilder

#: the batch from which bodies are built in the child (1-based): the first one is built here
START_AT_BATCH = 2

#: seconds the child may take over one body (about 10 ms on a quiet machine) before the send
#: builds it here instead and stops the child: a stuck child never holds up a send
ANSWER_WITHIN = 60.0

#: (key, address, name, attributes): a recipient as it crosses to the child
Row = tuple[int, str, str, dict[str, Any]]


class ChildGone(RuntimeError):
    """The child process cannot build (it died, or never started)."""


def serve(requests: Connection, answers: Connection) -> None:
    """The child: read the mailing, then build request bodies for it until the pipe from the
    sending process closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        builder = PayloadBuilder(pickle.loads(requests.recv_bytes()))
    except EOFError:
        return
    answers.send("ready")
    while True:
        try:
            rows: list[Row] = requests.recv()
        except EOFError:  # the send is over, or the sending process is gone
            return
        try:
            data, rejected = builder.request(
                [Item(key, Recipient(email, name, attributes))
                 for key, email, name, attributes in rows])
        except Exception as exc:  # noqa: BLE001 - handed back, raised in the sending process
            try:
                answers.send(("error", pickle.loads(pickle.dumps(exc))))
            except Exception:  # noqa: BLE001 - an exception that does not pickle
                answers.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
            continue
        answers.send(("ok", rejected))
        answers.send_bytes(data)


class _Child:
    """One child process building bodies (a fresh interpreter running this module: it
    inherits no threads, locks or database connections), and the two pipes to it."""

    def __init__(self, mailing: Mailing):
        pickled = pickle.dumps(mailing)  # first: a mailing that does not pickle starts nothing
        theirs_in, ours_out = os.pipe()
        ours_in, theirs_out = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs_in), str(theirs_out)],
                pass_fds=(theirs_in, theirs_out), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL)  # it says nothing; a crash still shows on stderr
        except BaseException:
            for fd in (ours_in, ours_out):
                os.close(fd)
            raise
        finally:
            os.close(theirs_in)
            os.close(theirs_out)
        self.requests = Connection(ours_out, readable=False)
        self.answers = Connection(ours_in, writable=False)
        self.ready = False
        # Written by a thread: the pipe holds less than a mailing until the child, still
        # starting, reads it; meanwhile the send builds its bodies here.
        self.handing = threading.Thread(target=self._hand, args=(pickled,), daemon=True,
                                        name="sendgrid-bodies-mailing")
        self.handing.start()

    def _hand(self, pickled: bytes) -> None:
        try:
            self.requests.send_bytes(pickled)
        except OSError:  # the child died first: is_ready() tells
            pass

    def is_ready(self, wait: float = 0.0) -> bool:
        """Whether the child has said it is ready, waiting up to `wait` seconds for it;
        ChildGone if it died."""
        if not self.ready:
            try:
                if self.answers.poll(wait):
                    self.ready = self.answers.recv() == "ready"
            except (EOFError, OSError) as exc:
                raise ChildGone(str(exc) or type(exc).__name__) from None
        return self.ready

    def request(self, rows: list[Row]) -> tuple[bytes, dict[int, str]]:
        try:
            self.requests.send(rows)
            if not self.answers.poll(ANSWER_WITHIN):
                raise ChildGone(f"no answer within {ANSWER_WITHIN:.0f} s")
            status, value = self.answers.recv()
            if status == "error":
                raise value
            return self.answers.recv_bytes(), value
        except (EOFError, OSError) as exc:
            raise ChildGone(str(exc) or type(exc).__name__) from None

    def close(self, *, kill: bool = False) -> None:
        """End the child: the end of its pipe tells it; `kill` (a child given up on), or
        before it has read the mailing (no other thread may write to the pipe when it
        closes), a kill."""
        if kill or self.handing.is_alive():
            self.process.kill()
            self.handing.join()
        self.requests.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.answers.close()


class Bodies:
    """Request bodies for one mailing: here at first, then in a child process (see above).

    Not thread-safe: the transport builds one body at a time."""

    def __init__(self, mailing: Mailing, builder: PayloadBuilder | None = None):
        self.mailing = mailing
        self.builder = builder or PayloadBuilder(mailing)
        self.built = 0
        self.child: _Child | None = None
        self.given_up = False  # the child died or could not start: build here from now on

    def request(self, items: Sequence[Item]) -> tuple[bytes, dict[int, str]]:
        """The request for `items` as JSON bytes and the recipients left out (key -> reason),
        as `PayloadBuilder.request()` makes them."""
        self.built += 1
        child = self._child()
        if child is not None:
            rows = [(item.key, item.recipient.email, item.recipient.name,
                     dict(item.recipient.attributes)) for item in items]
            try:
                return child.request(rows)
            except ChildGone:
                self._give_up()
        return self.builder.request(items)

    def _child(self) -> _Child | None:
        """The child when it is ready; started with the START_AT_BATCH-th batch."""
        if self.given_up or self.built < START_AT_BATCH:
            return None
        try:
            if self.child is None:
                self.child = _Child(self.mailing)
            return self.child if self.child.is_ready() else None
        except (ChildGone, OSError, pickle.PicklingError, AttributeError, TypeError):
            self._give_up()  # e.g. a link filler that does not pickle, or no interpreter
            return None

    def _give_up(self) -> None:
        self.given_up = True
        if self.child is not None:
            self.child.close(kill=True)
            self.child = None

    def close(self) -> None:
        """Stop the child, if one runs."""
        if self.child is not None:
            self.child.close()
            self.child = None


if __name__ == "__main__":
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]),
                                                                   readable=False))
