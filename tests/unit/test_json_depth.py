"""http.limits.json_depth: the nesting a recursive JSON parser would dive to, found without
recursion (the 400 for JSON_MAX_DEPTH is tested over HTTP in test_edges_bodies)."""

from __future__ import annotations

import json

import pytest

from premium_billing.http.limits import json_depth


@pytest.mark.parametrize(
    "document",
    [1, "text", [], {}, [[]], {"a": [1, {"b": [[2]]}]}, [[[[[[[[[[]]]]]]]]]]],
)
def test_the_depth_of_valid_json_is_exact(document):
    def depth(value: object) -> int:
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            return 1 + max((depth(c) for c in children), default=0)
        return 0

    assert json_depth(json.dumps(document).encode()) == depth(document)


def test_brackets_and_escaped_quotes_inside_strings_do_not_count():
    body = json.dumps({"a": '[[[ "\\" {{{ ]', "b": ["\\", "[", '"', "]]]"]}).encode()
    assert json_depth(body) == 2


def test_unclosed_nesting_counts_as_deep_as_it_opens():
    assert json_depth(b"[" * 10_000) == 10_000
    assert json_depth(b'{"a": ' * 500) == 500


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-32"])
def test_any_encoding_json_accepts_is_measured(encoding):
    body = ("[" * 100 + '"\\"]"' + "]" * 100).encode(encoding)
    assert json.loads(body) is not None  # Python's json reads it: so must the scan
    assert json_depth(body) == 100


def test_a_body_that_is_not_text_has_no_depth():
    assert json_depth(b"\xff\xfe\x00") == 0
