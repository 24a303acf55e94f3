"""Simulation engine: optax optimizers on the paper's linear signal model."""
