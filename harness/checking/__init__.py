"""What "correct" means: the float64 reference, the comparison policy, the ledger of known upstream bugs."""
