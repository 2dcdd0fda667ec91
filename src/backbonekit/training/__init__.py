"""Run machinery shared by every task: run folders, the Lightning trainer, checkpoints, logs, plots, batch size."""
