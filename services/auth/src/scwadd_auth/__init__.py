"""Customer landing page, OAuth redirect and callback, status page; publishes grant events."""
