"""The ESPI (Green Button) engine: a streaming, safe parser, a writer, and CSV layouts."""
