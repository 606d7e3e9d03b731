"""Identity: users, sign-in, tokens, external identity providers, integration clients."""
