"""TVM 0.27 runs ConvTranspose nodes the ONNX spec forbids and returns a tensor, where ONNX Runtime refuses each
one. One minimal node per rule (x 1x2x3x3, W 2x1x2x2 unless said): kernel_shape with W's 4 dimensions, strides of
length 1 for 2 spatial axes, a negative dilation, a negative pad, pads of length 2, a negative output_padding,
output_padding of length 1, output_shape of length 1, B of length 2 for M = 1 (x 1x1x1x3, W 1x1x1x5: the output
comes back with 2 channels), pads that leave an output size of 0.
Prints REPRODUCED and exits 0 while TVM still runs every one of them, FIXED and exit 1 once it refuses any (the
line names which: narrow the ledger entry harness/checking/known.py tvm-accepts-invalid-convtranspose).
"""

from _invalid import run_tvm, still_accepted

X, W = (1, 2, 3, 3), (2, 1, 2, 2)
CASES = [
    ("kernel_shape of W's rank", X, W, {"kernel_shape": [2, 1, 2, 2]}),
    ("strides of length 1", X, W, {"strides": [2]}),
    ("negative dilation", X, W, {"dilations": [1, -1]}),
    ("negative pad", X, W, {"pads": [-1, 0, 0, 0]}),
    ("pads of length 2", X, W, {"pads": [1, 1]}),
    ("negative output_padding", X, W, {"strides": [2, 2], "output_padding": [-1, 0]}),
    ("output_padding of length 1", X, W, {"strides": [2, 2], "output_padding": [1]}),
    ("output_shape of length 1", X, W, {"strides": [2, 2], "output_shape": [6]}),
    ("bias longer than M", (1, 1, 1, 3), (1, 1, 1, 5), {}, 2),
    ("output size 0", X, W, {"pads": [2, 0, 2, 0]}),
]
still_accepted("TVM", run_tvm, CASES)
