"""What the SCWADD services share."""
