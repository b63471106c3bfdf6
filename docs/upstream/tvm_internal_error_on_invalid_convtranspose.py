"""TVM 0.27 refuses some invalid ConvTranspose nodes only by failing inside (a C++ check, a division by zero, an
allocation of a negative size) instead of a clean error naming the attribute, as ONNX Runtime does: group 0
('Check failed: groups > 0'), dilations [0, 0] ('Divide by zero'), strides or output_padding of length 3 for 2
spatial axes ('Check failed: strides.size() == 2', '... output_padding.size() == 2'), pads that leave an output size of -1
(std::bad_alloc). x 1x2x3x3, W 2x1x2x2.
Prints REPRODUCED and exits 0 while every one fails inside TVM, FIXED and exit 1 once any is refused cleanly or run.
"""

from _invalid import outcome, run_tvm
from _verdict import verdict

X, W = (1, 2, 3, 3), (2, 1, 2, 2)
CASES = [
    ("group 0", X, W, {"group": 0}),
    ("zero dilations", X, W, {"dilations": [0, 0]}),
    ("strides of length 3", X, W, {"strides": [2, 2, 1]}),
    ("output_padding of length 3", X, W, {"strides": [2, 2], "output_padding": [1, 1, 1]}),
    ("output size -1", X, W, {"pads": [3, 0, 2, 0]}),
]
INTERNAL = ("InternalError", "Check failed", "bad_alloc", "Divide by zero")
results = [(c[0], *outcome(run_tvm, c)) for c in CASES]
for name, v, what in results:
    print(f"{name}: {v} ({what})")
clean = [name for name, v, what in results if v == "accepted" or not any(t in what for t in INTERNAL)]
verdict(
    not clean,
    f"{len(results) - len(clean)} of {len(results)} invalid nodes fail inside TVM"
    + (f"; refused cleanly or run now: {', '.join(clean)}" if clean else ""),
)
