"""OpenVINO 2026.4 runs ConvTranspose nodes the ONNX spec forbids and returns a tensor, where ONNX Runtime refuses
each one. One minimal node per rule (x 1x2x3x3, W 2x1x2x2): group 0, kernel_shape with W's 4 dimensions,
kernel_shape [3, 3] for a 2x2 kernel, pads of length 2, output_padding [2, 0] with strides [2, 2] (not below
max(stride, dilation)), a negative output_padding, pads that leave an output size of 0.
Prints REPRODUCED and exits 0 while OpenVINO still runs every one of them, FIXED and exit 1 once it refuses any (the
line names which: narrow the ledger entry openvino-accepts-invalid-convtranspose in harness/checking/known.py).
"""

from _invalid import run_openvino, still_accepted

X, W = (1, 2, 3, 3), (2, 1, 2, 2)
CASES = [
    ("group 0", X, W, {"group": 0}),
    ("kernel_shape of W's rank", X, W, {"kernel_shape": [2, 1, 2, 2]}),
    ("kernel_shape not W's", X, W, {"kernel_shape": [3, 3]}),
    ("pads of length 2", X, W, {"pads": [1, 1]}),
    ("output_padding >= max(stride, dilation)", X, W, {"strides": [2, 2], "output_padding": [2, 0]}),
    ("negative output_padding", X, W, {"strides": [2, 2], "output_padding": [-1, 0]}),
    ("output size 0", X, W, {"pads": [2, 0, 2, 0]}),
]
still_accepted("OpenVINO", run_openvino, CASES)
