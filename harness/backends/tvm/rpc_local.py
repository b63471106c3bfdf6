"""A TVM RPC tracker and N RPC servers on loopback, for `make rpc-demo` and the tests.

    python -m harness.backends.tvm.rpc_local [--servers 2] [--key loopback] [--threads 1] [--kill-one-after N] -- CMD ...

starts `python -m tvm.exec.rpc_tracker` and N `python -m tvm.exec.rpc_server --tracker … --key KEY` (each
in its own process group, with TVM_NUM_THREADS=--threads), waits (bounded) until all N are registered, runs
CMD with `{tracker}` replaced by HOST:PORT, and stops everything afterwards — also when CMD fails, times out
or this process is interrupted. `--kill-one-after N` kills (SIGKILL, whole process group) a server that is
serving a session once N records exist in CMD's results, to show what a sweep does when a device vanishes.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pgid_members(pgid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(d.name))
    return out


class LoopbackCluster:
    """Tracker + servers as subprocesses; a context manager that always cleans up."""

    def __init__(
        self,
        servers: int = 2,
        key: str = "loopback",
        threads: int = 1,
        log_dir: Path | None = None,
        python: str = sys.executable,
        pin: bool = False,
    ):
        self.n, self.key, self.threads, self.python, self.pin = servers, key, threads, python, pin
        self.log_dir = Path(log_dir) if log_dir else None
        self.port = free_port()
        self.tracker = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.servers: list[subprocess.Popen] = []
        self.idle_members: dict[int, int] = {}

    def _spawn(
        self, args: list[str], name: str, cpus: set[int] | None = None, threads: int | None = None
    ) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "a") if self.log_dir else subprocess.DEVNULL
        env = {**os.environ, "TVM_NUM_THREADS": str(threads or self.threads), "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen(
            [self.python, "-m", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # --pin: the server, and the session processes it forks, on its own CPU(s) (what `taskset -c` does)
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        self.procs.append(p)
        return p

    def __enter__(self) -> LoopbackCluster:
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._spawn(
                [
                    "tvm.exec.rpc_tracker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--port-end",
                    str(self.port + 1),
                    "--silent",
                ],
                "tracker",
            )
            self._wait(lambda s: True, "the tracker to listen")
            for _ in range(self.n):
                self._server()
            self._wait(lambda s: len(self.registered(s)) >= self.n, f"{self.n} servers to register")
            time.sleep(0.5)
            self.idle_members = {p.pid: len(_pgid_members(p.pid)) for p in self.servers}
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _server(self, threads: int | None = None) -> subprocess.Popen:
        i, p, threads = len(self.servers), free_port(), threads or self.threads
        cpus = None
        if self.pin:  # server i on CPU i (cycling), `threads` CPUs each where there are enough
            usable = sorted(os.sched_getaffinity(0))
            cpus = {usable[(i * threads + j) % len(usable)] for j in range(threads)}
        proc = self._spawn(
            ["tvm.exec.rpc_server", "--tracker", self.tracker, "--key", self.key, "--host", "127.0.0.1",
             "--port", str(p), "--port-end", str(p + 100)],
            f"server-{i + 1}",
            cpus,
            threads,
        )  # fmt: skip
        self.servers.append(proc)
        return proc

    def add_server(self, threads: int | None = None) -> subprocess.Popen:
        """One more server under the key, mid-sweep (a device joining the farm), with its own TVM_NUM_THREADS
        when given (a different machine, as far as the sweep can tell); returns once it registered."""
        want = len(self.registered()) + 1
        proc = self._server(threads)
        self._wait(lambda s: len(self.registered(s)) >= want, "the new server to register")
        time.sleep(0.3)
        self.idle_members[proc.pid] = len(_pgid_members(proc.pid))
        return proc

    def registered(self, summary: dict | None = None) -> list[str]:
        from harness.backends.tvm.remote import servers_for, tracker_summary

        return servers_for(summary if summary is not None else tracker_summary(self.tracker, 2.0), self.key)

    def _wait(self, ok, what: str) -> None:
        from harness.backends.tvm.remote import tracker_summary
        from harness.core.errors import ConvtxError

        t0 = time.monotonic()
        last = ""
        while time.monotonic() - t0 < START_TIMEOUT_S:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(
                    f"loopback RPC: {dead[0].args[2]} exited with {dead[0].returncode} while "
                    f"waiting for {what}" + (f" (log: {self.log_dir})" if self.log_dir else "")
                )
            try:
                if ok(tracker_summary(self.tracker, 2.0)):
                    return
            except ConvtxError as e:
                last = str(e)
            time.sleep(0.2)
        raise TimeoutError(f"loopback RPC: gave up after {START_TIMEOUT_S:.0f} s waiting for {what} ({last})")

    def busy_servers(self) -> list[subprocess.Popen]:
        """Servers serving a session now: TVM's server forks a process per session, so a busy server's process
        group has more members than it had idle."""
        return [
            p
            for p in self.servers
            if p.poll() is None and len(_pgid_members(p.pid)) > self.idle_members.get(p.pid, 1 << 30)
        ]

    def kill(self, proc: subprocess.Popen) -> None:
        """The server vanishes: SIGKILL to its whole process group (server, listener, session)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self) -> None:
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)  # stragglers, and forked session processes
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _records(out: Path | None) -> int:
    if out is None:
        return 0
    n = 0
    for f in out.glob("**/results.jsonl"):
        try:
            n += sum(1 for ln in f.read_text().splitlines() if ln.strip())
        except OSError:
            pass
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.backends.tvm.rpc_local", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--key", default="loopback")
    p.add_argument("--threads", type=int, default=1, help="TVM_NUM_THREADS of each server (default 1)")
    p.add_argument("--pin", action="store_true", help="pin server i to CPU i (cycling), as `taskset -c i` would")
    p.add_argument("--logs", type=Path, default=Path("build/rpc-logs"))
    p.add_argument("--timeout", type=float, default=3600, help="seconds CMD may run (default 3600)")
    p.add_argument(
        "--kill-one-after",
        type=int,
        metavar="N",
        help="kill a busy server once CMD's --out holds N records (watch --watch)",
    )
    p.add_argument("--watch", type=Path, help="CMD's output directory (for --kill-one-after)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ... ({tracker} is replaced by HOST:PORT)")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("give the command to run after --")
    if args.servers < 1:
        p.error("--servers: at least 1")
    with LoopbackCluster(args.servers, args.key, args.threads, args.logs, pin=args.pin) as cl:
        print(
            f"rpc_local: tracker {cl.tracker}, {args.servers} servers under key {args.key!r}: "
            f"{', '.join(cl.registered())}" + (" (each pinned to its own CPU)" if args.pin else ""),
            file=sys.stderr,
        )
        cmd = [c.replace("{tracker}", cl.tracker) for c in cmd]
        proc = subprocess.Popen(cmd)
        t0, killed = time.monotonic(), None
        try:
            while proc.poll() is None:
                if time.monotonic() - t0 > args.timeout:
                    proc.kill()
                    print(f"rpc_local: {cmd[0]} ran past {args.timeout:.0f} s; killed", file=sys.stderr)
                    break
                if args.kill_one_after and killed is None and _records(args.watch) >= args.kill_one_after:
                    busy = cl.busy_servers()
                    if busy:
                        killed = busy[0]
                        cl.kill(killed)
                        print(
                            f"rpc_local: killed server pid {killed.pid} mid-case "
                            f"({_records(args.watch)} records written)",
                            file=sys.stderr,
                        )
                time.sleep(0.05)
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return rc


if __name__ == "__main__":
    sys.exit(main())
