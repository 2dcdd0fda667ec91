"""Image classification: data sets, the LightningModule and the train / eval / predict commands."""
