"""Organizations and their users."""
