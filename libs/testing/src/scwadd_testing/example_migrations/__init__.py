"""A minimal migrations package, laid out exactly as a service's: it proves
:func:`scwadd_core.db.run_migrations` on both engines and serves as the template to copy."""
