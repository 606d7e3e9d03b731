"""Live events: stored per recipient, then pushed through an in-process or Redis bus."""
