"""Runs the whole SCWADD system on one machine, wired as the Helm chart wires it."""
