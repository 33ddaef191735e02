"""The training engine: the run (`run`), its loop (`trainer`), evaluation, EMA, optimisers and run directories."""
