"""Pulls ESPI usage from the data custodian over mutual TLS, sync and async."""
