"""Closed-loop evaluation: runner, metrics, suites and reports."""
