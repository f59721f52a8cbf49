"""Benchmarks of edgelight models. Figures and the commands that made them: RESULTS.md."""
