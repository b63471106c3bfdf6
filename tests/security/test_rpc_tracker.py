"""A TVM RPC tracker that misbehaves (docs/security.md, docs/rpc.md): its answers are validated, a malformed
one is a one-line error, and every wait on it has a deadline, however slowly it drips its bytes."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from harness.core.errors import ConvtxError

pytest.importorskip("tvm")

MAGIC = 0x2F271  # tvm.rpc.base.RPC_TRACKER_MAGIC


class FakeTracker:
    """Answers the tracker handshake, then sends `answer` (bytes) `delay` seconds apart per byte."""

    def __init__(self, answer: bytes, delay: float = 0.0, magic: int = MAGIC):
        self.answer, self.delay, self.magic = answer, delay, magic
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.recv(4)
            c.sendall(struct.pack("<i", self.magic))
            n = struct.unpack("<i", c.recv(4))[0]
            c.recv(n)
            for i in range(len(self.answer)):
                if self.stop.is_set():
                    break
                c.sendall(self.answer[i : i + 1])
                time.sleep(self.delay)
        except (OSError, struct.error):  # the client gave up (a deadline) or was not a tracker client
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def framed(obj) -> bytes:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return struct.pack("<i", len(data)) + data


@pytest.fixture
def tracker():
    made = []

    def make(answer, **kw):
        t = FakeTracker(answer, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@pytest.mark.parametrize(
    "answer",
    [
        framed(b"{not json"),
        framed(b"\xff\xfe"),
        framed([0, "not a dict"]),
        framed([0, {"server_info": "x"}]),
        framed([0, {"server_info": [{"key": 3, "addr": "y"}]}]),
        framed("a string"),
        struct.pack("<i", -5),
        struct.pack("<i", 1 << 30),
    ],
)
def test_a_malformed_summary_is_one_line(tracker, answer):
    from harness.backends.tvm.remote import check_tracker

    t = tracker(answer)
    with pytest.raises(ConvtxError) as e:
        check_tracker(t.addr, "k")
    assert "\n" not in str(e.value) and t.addr in str(e.value)


@pytest.mark.parametrize(
    "answer",
    [
        framed(b"]]"),
        framed([0, ["host", "not a port", "k"]]),
        framed([0, ["host", 9090]]),
        framed([0, [["x"], 9090, "k"]]),
        framed([0, "x"]),
    ],
)
def test_a_malformed_session_answer_is_one_line(tracker, answer):
    from harness.backends.tvm.remote import RemoteLost, request_session

    t = tracker(answer)
    with pytest.raises(RemoteLost) as e:
        request_session(t.addr, "k", session_timeout=5, wait_s=5)
    assert "\n" not in str(e.value) and "malformed" in str(e.value)


def test_a_tracker_that_drips_bytes_meets_the_deadline(tracker):
    """Before: a timeout per receive, so a byte every 0.5 s held the driver 32.7 s against a 5 s limit."""
    from harness.backends.tvm.remote import tracker_summary

    t = tracker(framed([0, {"server_info": [], "queue_info": {}}]), delay=0.5)
    t0 = time.monotonic()
    with pytest.raises(ConvtxError, match="deadline"):
        tracker_summary(t.addr, timeout=2.0)
    assert time.monotonic() - t0 < 4.0


def test_a_dripping_tracker_cannot_hold_a_session_request_past_its_wait(tracker):
    from harness.backends.tvm.remote import RemoteLost, request_session

    t = tracker(framed([0, ["127.0.0.1", 1, "k"]]), delay=0.5)
    t0 = time.monotonic()
    with pytest.raises(RemoteLost):
        request_session(t.addr, "k", session_timeout=5, wait_s=2.0)
    assert time.monotonic() - t0 < 4.0


def test_not_a_tracker_is_one_line(tracker):
    from harness.backends.tvm.remote import tracker_summary

    t = tracker(b"", magic=1234)
    with pytest.raises(ConvtxError, match="not a TVM RPC tracker"):
        tracker_summary(t.addr)
