"""Calls outside the relay: call tokens, ICE servers, attendance records, orders that end calls."""
