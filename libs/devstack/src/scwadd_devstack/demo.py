"""Placeholder: the demo driver is written once the consent pages exist."""
