"""Consults: their one state machine, routing and escalation, offers, the thread, what calls do to them."""
