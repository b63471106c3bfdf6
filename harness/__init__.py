"""convtx: which compiler and which lowering of ConvTranspose is correct and fastest on this machine.

`import harness` stays light: torch, onnxruntime and tvm are imported only inside the modules that use them.
"""

__version__ = "0.1.0"


def load_run(run_dir):
    """A run directory as a pandas DataFrame, one row per record (harness/report/frame.py lists the columns):

    >>> import harness
    >>> df = harness.load_run("reports/runs/20261202-130522-ca2cfe56")
    >>> df[df.passed].pivot_table(index="model", columns="backend", values="median_ms", aggfunc="min")
    """
    from harness.report.frame import load_run as _load_run

    return _load_run(run_dir)


def load_runs(*run_dirs):
    """Several run directories as one DataFrame (`run_id` tells them apart)."""
    from harness.report.frame import load_runs as _load_runs

    return _load_runs(*run_dirs)
