"""Do loopback RPC servers behave as independent devices? One model built by tvm-llvm's pipeline, uploaded to N
loopback servers (each pinned to its own CPU, one engine thread), and timed by `time_evaluator` on one server
alone, then on all N at once — no sweep around it, so what differs is the devices alone. docs/rpc.md's
"Measured" section compares this with the sweep's own records (where the host's processes share the CPUs).

    python benchmarks/rpc_devices.py unet@64 [--servers 2] [--repeat 300]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="zoo ref, e.g. unet@64")
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=300)
    p.add_argument("--build-dir", default="build")
    a = p.parse_args()

    import numpy as np
    import tvm
    from tvm import relax

    from harness.backends.tvm import defaults
    from harness.backends.tvm.common import host_target, relax_module
    from harness.backends.tvm.remote import request_session
    from harness.backends.tvm.rpc_local import LoopbackCluster
    from harness.pipeline.sweep import zoo_ref
    from harness.pipeline.tune import prepare_isolated

    prep = prepare_isolated(zoo_ref(a.model), 1, 0, Path(a.build_dir))
    mod = relax_module(prep.onnx_path, prep.input_shapes, prep.input_dtypes)
    ex, _ = defaults.build(mod, host_target(1), None)
    lib = Path(tempfile.mkdtemp(prefix="convtx-rpc-devices-")) / "model.so"
    ex.export_library(str(lib))
    names = [str(v.name) for v in mod["main"].params]  # the VM's parameter order
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(prep.input_shapes[n]).astype(np.float32) for n in names]

    def job(tracker: str, out: dict, i: int) -> None:
        sess, server, _ = request_session(tracker, "loopback", 120)
        sess.upload(str(lib), target="model.so")
        dev = sess.cpu(0)
        vm = relax.VirtualMachine(sess.load_module("model.so"), dev)
        vm.set_input("main", *[tvm.runtime.tensor(x, dev) for x in inputs])
        f = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=a.repeat)
        t0 = time.perf_counter()
        r = f("main")
        out[i] = (server, time.perf_counter() - t0, float(np.median(r.results)) * 1e3)

    with LoopbackCluster(servers=a.servers, key="loopback", threads=1, pin=True) as cl:
        for n in (1, a.servers, 1, a.servers):
            out: dict = {}
            ts = [threading.Thread(target=job, args=(cl.tracker, out, i)) for i in range(n)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            print(
                f"{n} at once: "
                + "; ".join(
                    f"{s}: {wall:.3f} s for {a.repeat} calls, median {med:.3f} ms" for s, wall, med in out.values()
                )
            )


if __name__ == "__main__":
    main()
