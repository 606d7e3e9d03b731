"""Cooperation agreements: the only way anything crosses an organization boundary."""
