"""Accuracy protocols: the tables of BENCHMARKS.md that compare methods, starts and settings."""
