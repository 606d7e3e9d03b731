"""The I/O-free core of signaling: what the relay decides, as plain values and functions.

Nothing here touches a socket, Redis, the database or the event loop (tests/test_layers.py holds
it to that); time comes in as an argument where it matters.
"""
