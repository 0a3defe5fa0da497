"""Stripe webhook endpoint: verify, store (inbox), dispatch."""
