"""The `convtx` command: parsing only; the work lives in the modules it calls.

Each command group is a module here (info, check, bench, compile) with one `add_<command>(sub)` per command,
which adds its subparser and sets `func`; a command function checks its arguments, calls one library
function and prints. Modules here import the standard library only at load time, so `convtx --help` is fast.

Exit status: 0 success, 1 a verdict failed (mismatch or error in `validate`), 2 bad usage or bad input
(one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import sys

from harness.core.errors import ConvtxError
from harness.core.text import TerminalStream


def build_parser() -> argparse.ArgumentParser:
    from harness.cli import bench, check, info
    from harness.cli import compile as compile_

    p = argparse.ArgumentParser(
        prog="convtx",
        description="Which compiler and which lowering of ConvTranspose is correct and fastest on this machine.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # every command, in the order `convtx --help` has always listed them
    for add in (
        info.add_list,
        info.add_export,
        check.add_validate,
        compile_.add_build,
        bench.add_compare,
        bench.add_bench,
        compile_.add_tune,
        compile_.add_optimize,
        info.add_lower,
        check.add_conformance,
        check.add_fuzz,
        bench.add_report,
    ):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # what convtx prints can carry text from files (node names, reasons, paths): shown, never acted on
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = TerminalStream(out), TerminalStream(err)
    try:
        return args.func(args)
    except ConvtxError as e:
        print(f"convtx: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("convtx: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout, sys.stderr = out, err
