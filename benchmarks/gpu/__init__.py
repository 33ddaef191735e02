"""The prepared check for a machine with one GPU."""
