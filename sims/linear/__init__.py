"""The linear signal model: the dynamics, the engine that runs them over many seeds, and its studies."""
