"""Live events: stored in a commit-ordered log per channel, then fed to each node's subscribers."""
