"""Speed: training step, training loop, data pipeline and prediction throughput."""
