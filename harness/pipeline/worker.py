"""Case isolation: cases run in a worker process; a crash, abort or hang there becomes an error record.

Protocol: the driver writes one JSON request per line to the worker's stdin; the worker answers one JSON
line on the file descriptor that was its stdout. The worker points fd 1 at stderr before doing any work,
so whatever engines print (C++ logs included) cannot corrupt the protocol; stderr goes to a log file whose
last lines are reported when the worker dies. A worker announces `{"ready": true}` once it has imported
the harness: its start-up is bounded by STARTUP_TIMEOUT_S, and a request's timeout (a case's
`case_timeout_s`) starts only after that, so it measures the request and never the start-up.
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path


class WorkerDied(RuntimeError):
    def __init__(self, message: str, stderr_tail: list[str]):
        super().__init__(message)
        self.stderr_tail = stderr_tail


class WorkerTimeout(WorkerDied):
    pass


class WorkerOutOfMemory(WorkerDied):
    pass


FAULTS = ("segv", "abort", "hang", "oom", "exit")
# A fresh worker's start-up (interpreter, harness imports; under valgrind for bench --counts, much slower)
STARTUP_TIMEOUT_S = 600.0


def _inject(kind: str) -> None:
    """Die or stall the way engines do, for the isolation tests (RunConfig.faults)."""
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif kind == "abort":
        os.abort()
    elif kind == "hang":
        while True:
            time.sleep(3600)
    elif kind == "oom":
        hog = []
        while True:  # 64 MiB at a time, touched so it is resident
            hog.append(bytearray(64 << 20))
            time.sleep(0.01)
    elif kind == "exit":
        os._exit(3)


def _die_with_parent() -> None:
    """Linux: the worker gets SIGKILL when the driver dies (even by kill -9), so no orphan keeps computing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class WorkerClient:
    """A worker process, started on first use and restarted after it dies."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        memory_cap_bytes: int | None = None,
        prefix: list[str] | None = None,
    ):
        self.name = name
        self.prefix = list(prefix or [])  # e.g. valgrind's command line (bench --counts)
        self.env = env
        self.log_path = log_path
        self.memory_cap = memory_cap_bytes
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self._unready = False  # started; its ready line not read yet

    def _start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env["PYTHONUNBUFFERED"] = "1"
        from harness.core import safefs

        safefs.ensure_dir(self.log_path.parent)
        self._log = safefs.open_append(self.log_path, binary=True)
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "harness.pipeline.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self._buf = b""

    def _stderr_tail(self, n: int = 12) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 16384))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return [ln for ln in deque(lines, maxlen=n)]

    def start(self) -> None:
        """Start the process now, without waiting for it to be ready (its first request waits). A thread that
        sends requests should not be the one that starts the process: the process is killed when the thread
        that started it ends (PR_SET_PDEATHSIG is per thread), so a pool's workers start on the main thread."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
            self._unready = True

    def request(self, msg: dict, timeout_s: float) -> dict:
        """Send one request and wait for its answer; WorkerTimeout / WorkerDied when there is none. A worker
        started here must first say it is ready (within STARTUP_TIMEOUT_S); `timeout_s` counts from then."""
        self.start()
        if self._unready:
            self._unready = False
            ready = self._read_line(STARTUP_TIMEOUT_S, "did not start within")
            if not ready.get("ready"):
                raise WorkerDied(f"worker's first line was not its ready message: {ready}", self._stderr_tail())
        assert self.proc and self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the read below reports how it died
        return self._read_line(timeout_s, "timed out after")

    def _read_line(self, timeout_s: float, what: str) -> dict:
        assert self.proc and self.proc.stdout
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise WorkerTimeout(f"{what} {timeout_s:g} s (worker killed)", self._stderr_tail())
                if not sel.select(timeout=min(left, 0.25)):
                    self._check_memory()
                    continue
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    code = self.proc.wait(timeout=10)
                    self.proc = None
                    hint = " (the kernel's out-of-memory killer sends this)" if code == -signal.SIGKILL else ""
                    raise WorkerDied(f"worker {_describe_exit(code)}{hint}", self._stderr_tail())
                self._buf += chunk
        finally:
            sel.close()
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def _check_memory(self) -> None:
        if self.memory_cap is None or self.proc is None:
            return
        try:
            import psutil

            rss = psutil.Process(self.proc.pid).memory_info().rss
        except Exception:  # noqa: BLE001 — the process is gone; the read reports how
            return
        if rss > self.memory_cap:
            self.kill()
            raise WorkerOutOfMemory(
                f"out of memory: worker resident size {rss / 2**30:.2f} GiB exceeded the cap "
                f"{self.memory_cap / 2**30:.2f} GiB (worker killed)",
                self._stderr_tail(),
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, BrokenPipeError):
                self.kill()
        self.proc = None


def _serve() -> None:
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # engines' prints go to the log, not the protocol
    sys.stdout = sys.stderr
    from harness.core.config import RunConfig
    from harness.pipeline.case import run_case
    from harness.pipeline.prepare import ModelRef, Prepared, prepare

    proto.write(json.dumps({"ready": True}) + "\n")
    proto.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req["op"] == "prepare":
                r = req["ref"]
                ref = ModelRef(r["name"], r["size"], r["path"], tuple((n, tuple(s)) for n, s in r["shapes"]))
                out = {
                    "ok": True,
                    "prepared": prepare(ref, req["batch"], req["seed"], Path(req["build_dir"])).to_json(),
                }
            elif req["op"] == "case":
                cfg = RunConfig.from_json(req["cfg"])
                fault = dict(cfg.faults).get(req["case_id"])
                if fault:
                    _inject(fault)
                rec = run_case(
                    Prepared.from_json(req["prepared"]),
                    req["lowering"],
                    req["backend"],
                    cfg,
                    req["run_id"],
                    Path(req["build_dir"]),
                )
                out = {"ok": True, "record": rec.to_json()}
            elif req["op"] == "load":  # warm up ahead of need: import the engines (a remote sweep's slots)
                from harness.backends import get_backend

                for b in req["backends"]:
                    backend = get_backend(b)
                    if backend.availability():
                        backend.load()
                out = {"ok": True}
            elif req["op"] == "rpc_probe":  # a remote sweep: what each server under the key is
                from harness.backends.tvm.remote import probe_servers

                out = {"ok": True, "machines": probe_servers(req["tracker"], req["key"], int(req["n"]))}
            elif req["op"] == "fault":  # test hook: die like a native crash would
                _inject(req["kind"])
            else:
                out = {"ok": False, "error": f"unknown op {req['op']!r}"}
        except Exception as e:  # noqa: BLE001 — returned to the driver, which owns the verdict
            out = {"ok": False, "error": f"{type(e).__name__}: {e}".splitlines()[0][:500], "kind": type(e).__name__}
        proto.write(json.dumps(out) + "\n")
        proto.flush()
        # What this request imported (an engine, TVM's whole Python layer) stays for the worker's life: moved out
        # of the collector's sight, so that the full collections a remote session's close needs
        # (harness/backends/tvm/remote.py) scan only what later requests allocate (0.24 s per case before).
        gc.collect()
        gc.freeze()


if __name__ == "__main__":
    _serve()
