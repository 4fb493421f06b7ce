"""`make bench`: the project's benchmarks (not tests: figures, written to docs/benchmarks.md)."""
