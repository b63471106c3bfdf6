"""The reproducers' verdict: one marker line on stdout and the exit status the ledger test reads.

exit 0, "REPRODUCED: <what was seen>"  the upstream bug shows (the ledger entry holds);
exit 1, "FIXED: <what was seen>"       the engine now agrees with the spec (drop the ledger entry);
exit 2, "CANNOT RUN: <why>"            it cannot run here (e.g. no GPU).
A reproducer catches only the engine failure that is the bug; anything else (an import, a changed API) propagates
and exits 1 with a traceback and no marker, which tests/checking/test_known.py reads as a broken reproducer.
"""

import sys

REPRODUCED, FIXED, CANNOT_RUN = 0, 1, 2


def verdict(bug: bool, what: str):
    """REPRODUCED (exit 0) when `bug`, else FIXED (exit 1); `what` says what was seen."""
    print(f"REPRODUCED: {what}" if bug else f"FIXED: {what}", flush=True)
    sys.exit(REPRODUCED if bug else FIXED)


def cannot_run(why: str):
    print(f"CANNOT RUN: {why}", flush=True)
    sys.exit(CANNOT_RUN)
