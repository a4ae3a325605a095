"""Multi-speaker scripts: role tags switch voices, other tags stay in the text, bad tags are refused."""

import pytest

from fasttts.errors import InvalidRequestError
from fasttts.params import LEVELS
from fasttts.text import ScriptPart, parse_script, validate_role_name


def test_text_without_tags_is_one_part_for_the_default_role() -> None:
    assert parse_script("  Hello there.  ", "narrator") == [ScriptPart("narrator", "Hello there.")]


def test_text_before_the_first_tag_uses_the_default_role() -> None:
    parts = parse_script("Once upon a time. <role:anna>Hi! <role:bob> Hello.", "narrator")
    assert parts == [
        ScriptPart("narrator", "Once upon a time."),
        ScriptPart("anna", "Hi!"),
        ScriptPart("bob", "Hello."),
    ]


def test_attributes_in_any_order_with_spaces() -> None:
    parts = parse_script("<role: anna , speed = very_low, pitch=high >Hi", "narrator")
    assert parts == [ScriptPart("anna", "Hi", pitch="high", speed="very_low")]


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_is_accepted(level: str) -> None:
    (part,) = parse_script(f"<role:x,pitch={level},speed={level}>text", "d")
    assert (part.pitch, part.speed) == (level, level)


def test_attributes_do_not_leak_into_the_next_tag() -> None:
    parts = parse_script("<role:a,pitch=high>one<role:b>two", "d")
    assert parts[1] == ScriptPart("b", "two")


def test_empty_parts_are_dropped() -> None:
    parts = parse_script("<role:a>   <role:b>\n<role:c>said this<role:d>", "d")
    assert parts == [ScriptPart("c", "said this")]
    assert parse_script("", "d") == []
    assert parse_script("<role:a>", "d") == []


def test_other_tags_stay_in_the_text() -> None:
    parts = parse_script("Ha <laugh> ok <role:anna>so <sigh> tired <b>bold</b>", "narrator")
    assert parts == [ScriptPart("narrator", "Ha <laugh> ok"), ScriptPart("anna", "so <sigh> tired <b>bold</b>")]


def test_role_keyword_is_case_insensitive_and_names_are_kept() -> None:
    assert parse_script("<ROLE:Anna Lee>Hi", "d") == [ScriptPart("Anna Lee", "Hi")]


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("<role:anna,pitch=loud>", "pitch must be one of"),
        ("<role:anna,speed=>", "speed must be one of"),
        ("<role:anna,volume=high>", "unknown attribute 'volume'"),
        ("<role:anna,high>", "must be key=value"),
        ("<role:anna,pitch=high,pitch=low>", "given twice"),
        ("<role:>", "empty"),
        ("<role:../etc>", "must not contain"),
        ("<role:a/b>", "must not contain"),
    ],
)
def test_bad_tags_are_refused_naming_the_problem(tag: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as info:
        parse_script(f"Hello {tag} there", "narrator")
    assert info.value.param == "text"


def test_validate_role_name_strips_and_accepts_ordinary_names() -> None:
    assert validate_role_name("  Anna-Lee_2 ") == "Anna-Lee_2"
    assert validate_role_name("小明") == "小明"
    assert validate_role_name("x" * 64) == "x" * 64


@pytest.mark.parametrize(
    "name",
    ["", "   ", "x" * 65, "a/b", "a\\b", "..", "a..b", ".hidden", "bad\x00name", "tab\tname", "zero\u200bwidth", "a<b", "a>b", "a,b"],
)
def test_validate_role_name_refuses_unsafe_names(name: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_role_name(name)
    assert info.value.param == "text" and info.value.message


def test_validate_role_name_reports_the_callers_field() -> None:
    with pytest.raises(InvalidRequestError) as info:
        validate_role_name("a/b", param="name")
    assert info.value.param == "name"
