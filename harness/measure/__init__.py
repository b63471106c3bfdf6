"""Measuring the machine and a case: timing, instruction counting, calibration, machine facts, FLOPs, the GPU probe."""
