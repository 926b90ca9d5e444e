"""Experiment tracking: Sacred observers for runs, with no server needed."""
