"""Gymnasium tasks built on the simulation parts."""
