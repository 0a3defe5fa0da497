"""Stripe webhook endpoint: verify, store (inbox), dispatch."""

from .views import bp

__all__ = ["bp"]
