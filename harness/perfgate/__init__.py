"""The performance-regression gate (convtx compare) and the study that measures its false-alarm rate and power."""
