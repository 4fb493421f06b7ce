"""Serves the exports to the operator behind HTTP Basic auth."""
