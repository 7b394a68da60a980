"""taskhook/core/jsoncodec.py and decode_json's fast path: orjson's speed, the stdlib's answers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskhook.core import jsoncodec
from taskhook.core.errors import BadRequest
from taskhook.core.validation import MAX_NESTING, check_storable, decode_json

BIG = 2**70 + 1  # past 64 bits: orjson would parse it to a float


def test_a_big_integer_is_parsed_exactly() -> None:
    assert jsoncodec.loads(f'{{"n": {BIG}}}') == {"n": BIG}
    assert jsoncodec.loads(f"[{BIG}]".encode()) == [BIG]


def test_what_only_the_stdlib_writes_is_written_by_it() -> None:
    assert jsoncodec.dumps({"n": BIG}) == f'{{"n":{BIG}}}'
    assert jsoncodec.dumps({1: "a"}) == '{"1":"a"}'  # json turns the key into a string
    assert jsoncodec.dumps_bytes([BIG]) == f"[{BIG}]".encode()


def test_output_is_compact_utf8_in_insertion_order() -> None:
    value = {"z": "é ✓", "a": [1, 2.5, None, True]}
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert jsoncodec.dumps(value) == expected
    assert jsoncodec.dumps_bytes(value) == expected.encode()


def test_what_orjson_refuses_gets_the_stdlib_answer() -> None:
    assert jsoncodec.exact_loads('"\\ud800"') is jsoncodec.NOT_EXACT
    assert jsoncodec.loads('"\\ud800"') == "\ud800"
    with pytest.raises(json.JSONDecodeError, match="Expecting value"):
        jsoncodec.loads("[1,]")


def _stdlib_decode(raw: bytes) -> object:
    """decode_json before the fast path: json.loads, then check_storable."""
    value = json.loads(raw, parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    check_storable(value, "body")
    return value


def _nested(depth: int, inner: str) -> bytes:
    return ('{"a":' * depth + inner + "}" * depth).encode()


@pytest.mark.parametrize("depth", [MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1])
@pytest.mark.parametrize("inner", ["1", "{}", "[]", "[1]"])
def test_the_depth_limit_is_the_same_on_the_fast_path(depth: int, inner: str) -> None:
    raw = _nested(depth, inner)
    try:
        expected = _stdlib_decode(raw)
    except BadRequest as exc:
        with pytest.raises(BadRequest, match="nested deeper"):
            decode_json(raw)
        assert "nested deeper" in str(exc)
    else:
        assert decode_json(raw) == expected


def test_a_deep_body_with_many_brackets_is_walked_not_trusted() -> None:
    # More brackets than MAX_NESTING side by side (shallow), then one deep branch.
    shallow = "[" + ",".join(["[]"] * (MAX_NESTING * 2)) + "]"
    assert decode_json(shallow.encode()) == [[]] * (MAX_NESTING * 2)
    deep = "[" + ",".join(["[]"] * MAX_NESTING) + "," + "[" * MAX_NESTING + "1" + "]" * MAX_NESTING
    with pytest.raises(BadRequest, match="nested deeper"):
        decode_json((deep + "]").encode())


@pytest.mark.parametrize("raw", [b'"a\\u0000b"', b'{"k\\u0000": 1}', b"[1e400]", b"[NaN]"])
def test_unstorable_values_are_still_refused(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_json(raw)


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    assert decode_json(b'"\\\\u0000"') == "\\u0000"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decode_json_answers_as_the_stdlib_did(value: object) -> None:
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        expected = ("ok", _stdlib_decode(raw))
    except (BadRequest, ValueError) as exc:
        expected = ("refused", type(exc).__name__)
    try:
        got = ("ok", decode_json(raw))
    except BadRequest:
        got = ("refused", "BadRequest")
    if expected[0] == "ok":
        assert got == expected
        assert repr(got[1]) == repr(expected[1])  # 1 stays 1, 1.0 stays 1.0
    else:
        assert got[0] == "refused"


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_dumps_parses_back_to_the_same_value(value: object) -> None:
    try:
        text = jsoncodec.dumps(value)
    except UnicodeEncodeError:
        return
    assert repr(jsoncodec.loads(text)) == repr(json.loads(text))
    assert json.loads(text) == json.loads(json.dumps(value))
