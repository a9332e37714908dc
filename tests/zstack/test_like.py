"""SQL LIKE matching: agrees with a regular-expression reference, and a pattern that made the
old backtracking matcher run for minutes is answered at once."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmexec.zstack.like import LikePattern


def reference(pattern: str, text: str) -> bool:
    # The textbook translation (backtracking, so only for small inputs).
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("", "", True),
    ("", "a", False),
    ("%", "", True),
    ("%%%", "anything", True),
    ("_", "", False),
    ("_", "é", True),
    ("abc", "abc", True),
    ("abc", "abcd", False),
    ("a%", "abc", True),
    ("%c", "abc", True),
    ("%b%", "abc", True),
    ("a%a", "a", False),  # the prefix and the suffix may not overlap
    ("a%a", "aa", True),
    ("a_c", "abc", True),
    ("a_c", "ac", False),
    ("%a_c%", "xxabcxx", True),
    ("%a_c%b_", "xabcyb", False),
    ("%a_c%b_", "xabcybz", True),
    ("a.b", "axb", False),  # regex characters are literal
    ("%[x]%", "a[x]b", True),
    ("%\n%", "a\nb", True),
    ("%%%%%%%%%%!", "0123456789abcdef0123456789abcdef", False),
])
def test_examples(pattern: str, text: str, expected: bool) -> None:
    assert LikePattern(pattern).matches(text) is expected
    assert reference(pattern, text) is expected


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab%_", max_size=10), st.text(alphabet="ab_%", max_size=12))
def test_agrees_with_the_reference(pattern: str, text: str) -> None:
    assert LikePattern(pattern).matches(text) is reference(pattern, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=8), st.text(max_size=30))
def test_agrees_with_the_reference_on_any_characters(pattern: str, text: str) -> None:
    assert LikePattern(pattern).matches(text) is reference(pattern, text)


@pytest.mark.timeout(60)  # a hang guard: the backtracking matcher took minutes here
def test_patterns_that_backtrack_are_linear() -> None:
    uuid = "0123456789abcdef" * 2
    assert not LikePattern("%%%%%%%%%%!").matches(uuid)
    assert not LikePattern("%a" * 500 + "!").matches("a" * 10_000)
    assert LikePattern("%a" * 500 + "%").matches("a" * 10_000)
    assert not LikePattern("%" + "a_" * 200 + "!").matches("a" * 10_000)
    assert LikePattern("%" + "a_" * 200).matches("a" * 10_000)
