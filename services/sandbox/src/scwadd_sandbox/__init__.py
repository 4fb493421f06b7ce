"""A faithful, fault-injectable PG&E Share My Data data custodian."""
