"""Plots and reports from a run directory."""
