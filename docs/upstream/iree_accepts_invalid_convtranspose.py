"""IREE 3.13 runs ConvTranspose nodes the spec forbids and returns a tensor, where ONNX Runtime refuses each one. One
minimal node per rule (x 1x2x3x3, W 2x1x2x2, found by `convtx conformance` and `convtx fuzz`): a zero stride,
a negative dilation, pads of length 2, output_padding [2, 0] with strides [2, 2] (not below max(stride, dilation)),
a negative output_padding, pads that leave an output size of 0.
Prints REPRODUCED and exits 0 while IREE still runs every one of them, FIXED and exit 1 once it refuses any (the
line names which: narrow the ledger entry iree-accepts-invalid-convtranspose in harness/checking/known.py).
"""

from _invalid import run_iree, still_accepted

X, W = (1, 2, 3, 3), (2, 1, 2, 2)
CASES = [
    ("a zero stride", X, W, {"strides": [0, 1]}),
    ("a negative dilation", X, W, {"dilations": [-1, 1]}),
    ("pads of length 2", X, W, {"pads": [1, 1]}),
    ("output_padding >= max(stride, dilation)", X, W, {"strides": [2, 2], "output_padding": [2, 0]}),
    ("negative output_padding", X, W, {"strides": [2, 2], "output_padding": [-1, 0]}),
    ("output size 0", X, W, {"pads": [2, 0, 2, 0]}),
]
still_accepted("IREE", run_iree, CASES)
