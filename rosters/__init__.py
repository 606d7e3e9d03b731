"""Specialist profiles, availability, rosters and shifts: who is on call."""
