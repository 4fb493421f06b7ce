"""scwadd-webhooks: the operator's systems hear of exports and grant endings, signed the
Standard Webhooks way."""
