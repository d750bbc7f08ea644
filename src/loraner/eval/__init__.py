"""Evaluation: strict entity metrics, type confusion, training curves and the markdown report."""
