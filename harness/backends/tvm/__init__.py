"""Apache TVM (Relax): a leaf `common` module that the LLVM, CUDA, remote (RPC) and tuning modules import; none of them imports another."""
