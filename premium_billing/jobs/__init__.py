"""Scheduled jobs; each is a function of a business date `as_of`."""
