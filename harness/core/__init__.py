"""The vocabulary every stage shares: errors, typed configuration, records, run directories, the ConvTranspose spec, ONNX I/O, the content-addressed cache. Imports nothing above it."""
