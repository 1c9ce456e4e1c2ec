"""Hydra sweeper plugin `hydra/sweeper=scaling`: scaling-study grids (see `scaling.sweep.grid`)."""
