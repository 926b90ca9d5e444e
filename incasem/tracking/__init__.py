"""Experiment tracking with no server needed: Sacred observers (`observers`), the training run
folder layout (`run_folder`) and reading the run store back (`runs`)."""
