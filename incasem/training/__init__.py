"""Training: the config schema, the run folder and the training loop around the gunpowder
pipeline (`incasem.pipeline`)."""
