"""The `liaison` command line: composition of the app and the domains."""
