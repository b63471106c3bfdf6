"""Case isolation: a worker that crashes or hangs becomes an error, and the next request still works."""

import pytest

from harness.pipeline.worker import WorkerClient, WorkerDied, WorkerTimeout


@pytest.fixture
def client(tmp_path):
    c = WorkerClient("t", {}, tmp_path / "worker.log")
    yield c
    c.kill()


def test_segfault_is_reported_with_its_signal_and_the_worker_restarts(client, tmp_path):
    with pytest.raises(WorkerDied, match="SIGSEGV") as info:
        client.request({"op": "fault", "kind": "segv"}, timeout_s=60)
    assert isinstance(info.value.stderr_tail, list)
    ans = client.request({"op": "nonsense"}, timeout_s=60)  # a fresh worker answers
    assert ans == {"ok": False, "error": "unknown op 'nonsense'"}


def test_abort_is_reported(client):
    with pytest.raises(WorkerDied, match="SIGABRT"):
        client.request({"op": "fault", "kind": "abort"}, timeout_s=60)


def test_hang_times_out_and_kills_the_worker(client):
    with pytest.raises(WorkerTimeout, match="timed out after 1 s"):
        client.request({"op": "fault", "kind": "hang"}, timeout_s=1)
    assert client.proc is None
    assert client.request({"op": "nonsense"}, timeout_s=60)["ok"] is False


def test_exceptions_inside_the_worker_are_answers_not_crashes(client):
    ans = client.request(
        {
            "op": "prepare",
            "ref": {"name": "nope", "size": 8, "path": None, "shapes": []},
            "batch": 1,
            "seed": 0,
            "build_dir": "/tmp",
        },
        timeout_s=60,
    )
    assert ans["ok"] is False and "unknown model 'nope'" in ans["error"]


def test_memory_cap_kills_the_worker_with_an_out_of_memory_error(tmp_path):
    from harness.pipeline.worker import WorkerOutOfMemory

    c = WorkerClient("oom", {}, tmp_path / "w.log", memory_cap_bytes=512 << 20)
    try:
        with pytest.raises(WorkerOutOfMemory, match="exceeded the cap 0.50 GiB"):
            c.request({"op": "fault", "kind": "oom"}, timeout_s=60)
        assert c.proc is None
    finally:
        c.kill()


def test_a_worker_that_exits_is_reported_with_its_status(client):
    with pytest.raises(WorkerDied, match="exited with status 3"):
        client.request({"op": "fault", "kind": "exit"}, timeout_s=60)
