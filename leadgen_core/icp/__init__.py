"""Ideal-customer-profile rules, their resolution to SSIC codes, and candidate selection."""
