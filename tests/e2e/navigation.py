"""Clicks that lead to another page, for the browser tests."""

from __future__ import annotations

from typing import Any


def follow(page: Any, target: Any) -> None:
    """Click `target` (a locator) and wait until the page it leads to has loaded.

    A click returns once it is dispatched, before the navigation it starts: a read right after
    it may read the page being left (a flash, a count of rows), so every click that navigates
    and is followed by a read goes through here."""
    with page.expect_navigation():
        target.click()
