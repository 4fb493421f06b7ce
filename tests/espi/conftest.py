import os

import pytest


def pytest_report_header(config: pytest.Config) -> str:
    location = os.environ.get("ESPI_XSD")
    if location:
        return f"ESPI documents are checked against the official schema: {location}"
    return "ESPI_XSD not set: generated ESPI documents are NOT checked against the schema"
