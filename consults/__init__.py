"""Consults, rosters, routing and escalation (to come)."""
