"""The account's objects, by id and in creation order, behind one lock.

The resources change objects in place while they hold `lock` (re-entrant), so that one API
request is one atomic step; everything handed out of the fake is a `snapshot`."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .params import ApiError, int_param

_T = TypeVar("_T")


def snapshot(obj: _T) -> _T:
    """A deep copy: what leaves the lock (API answers, events, the facade) never changes."""
    return copy.deepcopy(obj)


class ObjectStore:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []  # creation order of ids

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._objects[obj["id"]] = obj
            self._order.append(obj["id"])
        return obj

    def find(self, object_id: str, object_type: str) -> dict[str, Any] | None:
        """The live object `object_id` if it is an `object_type`."""
        with self.lock:
            obj = self._objects.get(object_id)
        return obj if obj is not None and obj["object"] == object_type else None

    def fetch(self, object_id: str, object_type: str, param: str) -> dict[str, Any]:
        """The live object, or Stripe's resource_missing: 404 for the id in the URL
        (`param="id"`), 400 for an id given as parameter `param`."""
        obj = self.find(object_id, object_type)
        if obj is None:
            raise ApiError(
                404 if param == "id" else 400,
                f"No such {object_type}: '{object_id}'",
                code="resource_missing",
                param=param,
            )
        return obj

    def get(self, object_id: str) -> dict[str, Any]:
        """The live object of any type; KeyError when there is none."""
        with self.lock:
            return self._objects[object_id]

    def all(self, object_type: str) -> list[dict[str, Any]]:
        """The live objects of a type, oldest first."""
        with self.lock:
            return [
                self._objects[i] for i in self._order if self._objects[i]["object"] == object_type
            ]

    def page(
        self,
        object_type: str,
        params: dict[str, Any],
        url: str,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """A Stripe list of the objects of a type that `keep`, newest first, paged by
        `limit` (10, at most 100) and `starting_after`."""
        limit = int_param(params.get("limit", "10"), "limit", minimum=1)
        if limit > 100:
            raise ApiError(400, "This value must be less than or equal to 100.", param="limit")
        with self.lock:
            items = [
                obj
                for obj in reversed(self.all(object_type))  # newest first, as Stripe lists
                if keep is None or keep(obj)
            ]
            after = params.get("starting_after")
            if after:
                ids = [o["id"] for o in items]
                if after not in ids:
                    raise ApiError(
                        400,
                        f"No such {object_type}: '{after}'",
                        code="resource_missing",
                        param="starting_after",
                    )
                items = items[ids.index(after) + 1 :]
            return {
                "object": "list",
                "data": snapshot(items[:limit]),
                "has_more": len(items) > limit,
                "url": url,
            }
