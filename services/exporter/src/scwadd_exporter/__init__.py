"""Builds the CSV and manifest from fetched ESPI, then revokes the grant."""
