"""Campaigns that drive many cases through the pipeline to find where engines, lowerings or the harness go wrong: conformance, fuzzing, equivalence, divergence localisation, kill/resume chaos."""
