"""Sweeps: the model ladder and the grids that the Hydra sweeper expands."""
