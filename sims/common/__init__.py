"""Shared plumbing: the command line, outputs, plots, optimizers by name and norm balls."""
