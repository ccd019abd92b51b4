"""Simulation: PyBullet world, bodies, sensors, layouts and Gymnasium tasks (no torch here)."""
