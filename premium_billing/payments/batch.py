"""Compatibility names: set-based posting is the posting engine (`payments.posting`) now.

`receive_many` is `posting.receive`, `post_matches` is `posting.post`, `MatchPlan` is
`posting.Plan`. New code imports them from `payments.posting`."""

from __future__ import annotations

from premium_billing.payments.posting import MatchPlan, Received, post_matches, receive_many

__all__ = ["MatchPlan", "Received", "post_matches", "receive_many"]
