"""Training loop, evaluation, EMA, checkpoints and distributed helpers."""
