"""convtx: which compiler and which lowering of ConvTranspose is correct and fastest on this machine.

`import harness` stays light: torch, onnxruntime and tvm are imported only inside the modules that use them.
"""

__version__ = "0.1.0"
