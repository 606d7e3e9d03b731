"""Signed webhooks to an org's endpoints, fed from the stored event log, with a delivery log."""
