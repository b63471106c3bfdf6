"""Remote devices through TVM's own RPC tracker and servers (`bench/validate --rpc-tracker HOST:PORT --rpc-key KEY`).

The case is compiled here, for the remote's target; then a session is requested from the tracker under the key
(the tracker hands out a free server, in turn), the library is uploaded and loaded there, the inputs are sent,
the outputs fetched back for the numerical check here, and the timing is TVM's `time_evaluator` running on
the remote device (one call per sample, device-synchronised), so no network time is in the samples.

One session per case, closed when the case ends: consecutive cases go to the servers of the key in turn, and a
server that disappears costs only the case it was running (an `error` record naming the server); the next
case gets a session from the servers still registered. Protocol code is TVM's (tvm.rpc.base, tvm.rpc.connect);
this module only adds bounded waits, because the tracker queues a request for as long as no server is free.

Only TVM backends run remotely: the other engines have no RPC runtime, and a case of theirs in a remote run is
`skipped` with that reason rather than measured on this machine beside remote numbers.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.backends.base import BackendUnavailable, Compiled
from harness.backends.tvm.common import BuiltNotRun
from harness.core.errors import ConvtxError

CONNECT_TIMEOUT_S = 5.0  # reaching the tracker
REQUEST_TIMEOUT_S = 120.0  # waiting for a free server under the key
REQUEST_ATTEMPTS = 3  # a server handed out but gone by the time we connect: ask again


class RemoteLost(RuntimeError):
    """The remote server went away (or failed) during a case; the case is an error naming the server. A remote
    sweep runs such a case once more on another server (harness/pipeline/farm.py): `retryable`."""

    retryable = True

    def __init__(self, message: str, server: str | None = None):
        super().__init__(message)
        self.server = server


MAX_ANSWER_BYTES = 1 << 20  # a tracker's summary of a large farm is a few kB


class Malformed(ValueError):
    """A tracker's answer that is not what TVM's tracker protocol sends."""


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    """`n` bytes, all of them before `deadline` (time.monotonic): a tracker that drips its bytes cannot hold
    a caller longer than the deadline (a timeout per receive could, indefinitely)."""
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        sock.settimeout(left)
        chunk = sock.recv(min(n - len(out), 65536))
        if not chunk:
            raise ConnectionError("connection closed mid-answer")
        out += chunk
    return bytes(out)


def _recv_answer(sock: socket.socket, deadline: float):
    """One framed JSON answer (int32 length + JSON), size-capped and decoded, or Malformed."""
    size = struct.unpack("<i", _recv_exact(sock, 4, deadline))[0]
    if not 0 < size <= MAX_ANSWER_BYTES:
        raise Malformed(f"an answer of {size} bytes")
    data = _recv_exact(sock, size, deadline)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Malformed(f"not JSON ({type(e).__name__})") from None


def _summary_of(value) -> dict:
    """The SUMMARY answer's payload, checked: {server_info: [{key: str, addr: [host, port]}...], ...}."""
    from tvm.rpc import base

    if not (isinstance(value, list) and len(value) == 2 and value[0] == base.TrackerCode.SUCCESS):
        raise Malformed(f"{str(value)[:80]!r} is not a summary")
    s = value[1]
    if not isinstance(s, dict) or not isinstance(s.get("server_info", []), list):
        raise Malformed("a summary without a server list")
    for i in s.get("server_info", []):
        addr = i.get("addr") if isinstance(i, dict) else None
        if not (
            isinstance(i, dict)
            and isinstance(i.get("key", ""), str)
            and isinstance(addr, list)
            and len(addr) == 2
            and isinstance(addr[0], str)
            and isinstance(addr[1], int)
        ):
            raise Malformed(f"a server entry {str(i)[:80]!r}")
    if not isinstance(s.get("queue_info", {}), dict):
        raise Malformed("a summary with a malformed queue")
    return s


def _session_of(value) -> tuple[str, int, str]:
    """The REQUEST answer's (host, port, matchkey), checked."""
    from tvm.rpc import base

    if not (isinstance(value, list) and len(value) == 2 and value[0] == base.TrackerCode.SUCCESS):
        raise Malformed(f"{str(value)[:80]!r} is not a session")
    v = value[1]
    if not (
        isinstance(v, list)
        and len(v) == 3
        and isinstance(v[0], str)
        and isinstance(v[1], int)
        and not isinstance(v[1], bool)
        and 0 < v[1] < 65536
        and isinstance(v[2], str)
    ):
        raise Malformed(f"a session address {str(v)[:80]!r}")
    return v[0], v[1], v[2]


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConvtxError(f"--rpc-tracker {text!r}: expected HOST:PORT (e.g. 127.0.0.1:9190)")
    return host, int(port)


def _tracker_socket(host: str, port: int, timeout: float, deadline: float | None = None) -> socket.socket:
    from tvm.rpc import base

    deadline = deadline if deadline is not None else time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=max(0.01, min(timeout, deadline - time.monotonic())))
    try:
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", _recv_exact(sock, 4, deadline))[0]
    except BaseException:
        sock.close()
        raise
    if magic != base.RPC_TRACKER_MAGIC:
        sock.close()
        raise ConnectionError("not a TVM RPC tracker (wrong magic)")
    return sock


def _ask(host: str, port: int, message: list, connect_timeout: float, deadline: float):
    """One exchange with the tracker: connect, send `message`, read one answer, all before `deadline`."""
    from tvm.rpc import base

    sock = _tracker_socket(host, port, connect_timeout, deadline)
    try:
        base.sendjson(sock, message)
        return _recv_answer(sock, deadline)
    finally:
        sock.close()


def tracker_summary(addr: str, timeout: float = CONNECT_TIMEOUT_S) -> dict:
    """The tracker's summary (servers with their keys and addresses, free/pending per key), or a one-line
    ConvtxError when no tracker answers at `addr`."""
    from tvm.rpc import base

    host, port = parse_tracker(addr)
    deadline = time.monotonic() + timeout
    try:
        return _summary_of(_ask(host, port, [base.TrackerCode.SUMMARY], timeout, deadline))
    except TimeoutError:
        raise ConvtxError(
            f"--rpc-tracker {addr}: the tracker did not answer within the {timeout:g} s deadline"
        ) from None
    except Malformed as e:
        raise ConvtxError(f"--rpc-tracker {addr}: a malformed answer from the tracker ({e})") from None
    except (OSError, ConnectionError, struct.error) as e:
        raise ConvtxError(
            f"--rpc-tracker {addr}: no RPC tracker reachable ({type(e).__name__}: {e}); start one "
            f"with `python -m tvm.exec.rpc_tracker --host 127.0.0.1 --port {port}`"
        ) from None


def servers_for(summary: dict, key: str) -> list[str]:
    """Addresses (host:port) of the servers registered under `key`."""
    return [f"{s['addr'][0]}:{s['addr'][1]}" for s in summary.get("server_info", []) if s.get("key") == f"server:{key}"]


def check_tracker(addr: str, key: str) -> dict:
    """Before a remote sweep: the tracker answers and at least one server is registered under `key`."""
    if not key:
        raise ConvtxError("--rpc-tracker needs --rpc-key KEY (the device key the servers registered under)")
    s = tracker_summary(addr)
    servers = servers_for(s, key)
    if not servers:
        keys = sorted({i.get("key", "").removeprefix("server:") for i in s.get("server_info", [])} - {""})
        raise ConvtxError(
            f"--rpc-tracker {addr}: no server registered under key {key!r} (keys there: {', '.join(keys) or 'none'})"
        )
    return {"tracker": addr, "key": key, "servers": servers, "queue": s.get("queue_info", {}).get(key)}


def request_session(addr: str, key: str, session_timeout: float, wait_s: float = REQUEST_TIMEOUT_S):
    """A session on a server the tracker hands out under `key`: (RPCSession, "host:port" of the server,
    seconds waited). Bounded: no free server within `wait_s`, or no reachable server after a few attempts,
    is a RemoteLost."""
    from tvm import rpc
    from tvm.rpc import base

    host, port = parse_tracker(addr)
    t0 = time.monotonic()
    deadline = t0 + wait_s
    last = ""
    for _ in range(REQUEST_ATTEMPTS):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            value = _ask(host, port, [base.TrackerCode.REQUEST, key, "", 1], min(CONNECT_TIMEOUT_S, left), deadline)
            url, sport, matchkey = _session_of(value)
        except TimeoutError:
            raise RemoteLost(
                f"no server under key {key!r} became free within {wait_s:.0f} s (tracker {addr})"
            ) from None
        except Malformed as e:
            raise RemoteLost(f"tracker {addr}: a malformed answer to the request for key {key!r} ({e})") from None
        except (OSError, ConnectionError, struct.error) as e:
            raise RemoteLost(f"tracker {addr} unreachable: {type(e).__name__}: {e}") from None
        server = f"{url}:{sport}"
        try:
            sess = rpc.connect(url, sport, matchkey, session_timeout=session_timeout)
            return sess, server, time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 — a server gone between the tracker's answer and our connect
            last = f"{server}: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    raise RemoteLost(
        f"no reachable server under key {key!r} after {REQUEST_ATTEMPTS} attempts (last: {last or 'timed out'})"
    )


def probe_servers(addr: str, key: str, n: int, wait_s: float = 15.0) -> dict[str, dict]:
    """What each of up to `n` servers under `key` says it is ({"host:port": describe()}): sessions are held
    until all are open, so the tracker hands out a different server each time, then closed. A server busy
    with someone else's session for longer than `wait_s` is left out."""
    import gc

    held, out = [], {}
    try:
        for _ in range(n):
            try:
                sess, server, _ = request_session(addr, key, session_timeout=60.0, wait_s=wait_s)
            except RemoteLost:
                break
            held.append(sess)
            out[server] = describe(sess)
    finally:
        held.clear()
        gc.collect()  # sessions close when collected (RemoteTvmCompiled.close)
    return out


def session_for(cfg, need_gpu: bool):
    """A session for one case: (session, server, seconds waited, what the server says it is). A case that
    needs a GPU (tvm-cuda) goes to a server whose session shows one: servers without one are held while the
    tracker is asked again, at most once per server registered under the key, then released; with none, the
    case cannot run here (BackendUnavailable, one reason)."""
    import gc

    t0 = time.monotonic()
    tries = 1
    if need_gpu:
        try:
            tries = max(1, len(servers_for(tracker_summary(cfg.rpc_tracker), cfg.rpc_key)))
        except ConvtxError as e:
            raise RemoteLost(str(e)) from None
    held, seen = [], []
    try:
        for _ in range(tries):
            sess, server, _ = request_session(cfg.rpc_tracker, cfg.rpc_key, session_timeout=cfg.case_timeout_s)
            desc = describe(sess)
            if not need_gpu or desc.get("cuda"):
                return sess, server, time.monotonic() - t0, desc
            held.append(sess)
            seen.append(server)
    finally:
        if held:  # servers without a GPU go back to the tracker (sessions close when collected)
            held.clear()
            gc.collect()
    raise BackendUnavailable(
        f"no server under key {cfg.rpc_key!r} shows a CUDA GPU (asked {', '.join(seen)}): a tvm-cuda case needs one"
    )


class BuiltForRemote(Compiled):
    """The sweep's compile-ahead (RunConfig.rpc_machine): a library built and cached for a remote machine
    without a session; nothing to run here."""

    def __init__(self, info: dict):
        super().__init__((), info)

    def _run_impl(self, feeds):
        raise BackendUnavailable("built for a remote device ahead of its case: it runs there, not here")


def build_for_machine(backend, art, cfg) -> BuiltForRemote:
    """Compile (into the content-addressed cache) what `compile_remote` will load for a server that describes
    itself as `cfg.rpc_machine`, without asking the tracker for a session."""
    backend.check(art, cfg)
    _, _, info, _ = backend.remote_build(art, cfg, dict(cfg.rpc_machine))
    return BuiltForRemote({**info, "built_for_remote": dict(cfg.rpc_machine)})


def _remote_call(sess, name: str):
    try:
        return sess.get_function(name)()
    except Exception:  # noqa: BLE001 — a minimal C++ runtime (tvm_rpc on a board) lacks these; say "unknown"
        return None


def describe(sess) -> dict:
    """What the remote says about itself: LLVM's view of its CPU, its triple, its runtime's thread count
    (a server built from TVM's C++ runtime alone does not say: those fields are then absent)."""
    d = {
        "triple": _remote_call(sess, "target.llvm_get_system_triple"),
        "cpu": _remote_call(sess, "target.llvm_get_system_cpu"),
        "vendor": _remote_call(sess, "target.llvm_get_system_x86_vendor"),
        "threads": _remote_call(sess, "runtime.NumThreads"),
    }
    out: dict = {k: (str(v) if k != "threads" else int(v)) for k, v in d.items() if v not in (None, "")}
    try:
        dev = sess.cuda(0)
        if dev.exist:
            out["cuda"] = {"name": str(dev.device_name), "compute_version": str(dev.compute_version)}
    except Exception:  # noqa: BLE001 — a server without the CUDA runtime: no GPU to describe
        pass
    return out


class RemoteTvmCompiled(Compiled):
    """A Relax VM on a remote device. Inputs are copied there once; a run fetches the outputs back; timing is
    `time_evaluator` on the remote (samples are device time per call, without the network)."""

    def __init__(self, sess, vm, dev, input_names, info: dict, server: str):
        super().__init__(tuple(input_names), info)
        self.sess, self.vm, self.dev, self.server = sess, vm, dev, server

    def _guard(self, what: str, fn: Callable):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 — the connection or the server failed: name the server
            text = str(e).strip().splitlines()
            raise RemoteLost(
                f"remote {self.server} (key {self.info['remote']['key']}) failed during {what}: "
                f"{type(e).__name__}: {text[-1] if text else ''}"[:400],
                self.server,
            ) from None

    def _set_inputs(self, feeds) -> None:
        import tvm

        args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[n]), self.dev) for n in self.input_names]
        self.vm.set_input("main", *args)

    def _run_impl(self, feeds):
        def go():
            self._set_inputs(feeds)
            self.vm.invoke_stateful("main")
            out = self.vm.get_outputs("main")
            flat: list = []

            def walk(o):
                if hasattr(o, "numpy"):
                    flat.append(o.numpy())
                else:
                    for x in o:
                        walk(x)

            walk(out)
            return flat

        return self._guard("run", go)

    def _samples(self, feeds, cfg) -> list[float]:
        def go():
            self._set_inputs(feeds)
            one = self.vm.time_evaluator("invoke_stateful", self.dev, number=1, repeat=1)
            for _ in range(cfg.warmup):
                one("main")
            est = max(float(one("main").mean), 1e-7)
            n = max(cfg.min_repeats, int(np.ceil(cfg.min_time_s / est)))
            n = min(n, cfg.max_repeats, max(3, int(cfg.max_time_s / est)))
            res = self.vm.time_evaluator("invoke_stateful", self.dev, number=1, repeat=n)("main")
            return [float(r) * 1e3 for r in res.results]

        return self._guard("timing", go)

    def time(self, feeds, cfg):
        return self._samples(feeds, cfg)

    def time_interleaved(self, feeds, cfg, reference, slowdown_pct: float = 0.0):
        """Remote samples; no reference kernel (it runs on this machine, not on the remote device, so a
        ratio to it would mean nothing): the record says so."""
        if slowdown_pct:
            raise BackendUnavailable("--inject-slowdown works on local cases only (the busy-wait runs here)")
        return self._samples(feeds, cfg), [], {}

    def close(self) -> None:
        """End the session now, so the server returns to the tracker's pool for the next case. The session
        is closed when its last reference goes, and remote devices and modules refer back to it in cycles:
        without a collection here it stays open until Python's cyclic GC happens to run (minutes, seen),
        and the server stays busy for nothing."""
        import gc

        self.vm = self.dev = self.sess = None
        gc.collect()


def compile_remote(backend, art, cfg) -> RemoteTvmCompiled:
    """`backend` (a TVM backend) builds for the remote target with `backend.remote_build(art, cfg, desc)`,
    which returns (library path or None, executable, info, device kind); the library goes up, the VM is made
    there."""
    import tempfile

    from tvm import relax

    backend.check(art, cfg)  # the engine is here and takes the model; remote-capable
    t0 = time.monotonic()
    sess, server, waited, desc = session_for(cfg, getattr(backend, "device", "cpu") == "cuda")
    session_at = time.time()
    lib, ex, info, kind = backend.remote_build(art, cfg, desc)
    remote = {
        "tracker": cfg.rpc_tracker,
        "key": cfg.rpc_key,
        "server": server,
        "machine": desc,
        "session_wait_s": round(waited, 3),
        "session_at": round(session_at, 3),  # epoch seconds: from here the server is this case's
        "timed_by": "time_evaluator on the remote device",
    }
    info = {**info, "remote": remote}
    try:
        with tempfile.TemporaryDirectory(prefix="convtx-rpc-") as tmp:
            if lib is None:  # no compiled cache: export for the upload
                lib = Path(tmp) / "model.so"
                ex.export_library(str(lib))
            t1 = time.monotonic()
            name = f"{Path(lib).stem}.so"
            sess.upload(str(lib), target=name)
            rlib = sess.load_module(name)
            remote["upload_s"] = round(time.monotonic() - t1, 3)
        dev = sess.cuda(0) if kind == "cuda" else sess.cpu(0)
        if kind == "cuda" and not dev.exist:
            raise BuiltNotRun(f"remote {server} (key {cfg.rpc_key}) has no CUDA device", info)
        vm = relax.VirtualMachine(rlib, dev)
    except BackendUnavailable:
        raise
    except Exception as e:  # noqa: BLE001
        text = str(e).strip().splitlines()
        raise RemoteLost(
            f"remote {server} (key {cfg.rpc_key}) failed during upload/load: {type(e).__name__}: "
            f"{text[-1] if text else ''}"[:400],
            server,
        ) from None
    if kind == "cuda":
        remote["device"] = {"name": dev.device_name, "compute_version": dev.compute_version}
    remote["setup_s"] = round(time.monotonic() - t0, 3)
    return RemoteTvmCompiled(sess, vm, dev, list(art.input_shapes), info, server)
