"""Chapters from plain text, Markdown and EPUB (a real EPUB built with ebooklib in the test)."""

import io

import pytest
from ebooklib import epub

from fasttts.errors import InvalidRequestError
from fasttts.text import Chapter, chapters_from_epub, chapters_from_markdown, chapters_from_text, detect_chapters

PLAIN = """\
Chapter 1: The Start
It was a dark
and stormy night.

Second paragraph.

CHAPTER TWO
More text here.

Part II

Chapter 3
Final words.
"""

MARKDOWN = """\
# The Book

## One

Hello <laugh> *there*, with a [link](http://example.com) and `code`.

- item a
- item b

```
print("not spoken")
```

### A section

Section text.

## Two

Bye.
"""


def test_plain_text_headings_and_paragraphs() -> None:
    chapters = chapters_from_text(PLAIN)
    assert [c.title for c in chapters] == ["Chapter 1: The Start", "CHAPTER TWO", "Part II: Chapter 3"]
    assert chapters[0].text == "It was a dark and stormy night.\n\nSecond paragraph."
    assert chapters[2].text == "Final words."


def test_plain_text_underlined_headings_and_preamble() -> None:
    text = "My Book\nby Someone\n\nThe Start\n=========\nFirst.\n\nThe End\n-------\nLast.\n"
    chapters = chapters_from_text(text)
    assert chapters == [
        Chapter("Introduction", "My Book by Someone"),
        Chapter("The Start", "First."),
        Chapter("The End", "Last."),
    ]


@pytest.mark.parametrize("heading", ["Chapter 12", "CHAPTER ONE", "Part IV", "Book Three", "Prologue", "第三章 归来"])
def test_plain_text_heading_styles(heading: str) -> None:
    chapters = chapters_from_text(f"Before.\n\n{heading}\nAfter.")
    assert [c.title for c in chapters] == ["Introduction", heading]


def test_plain_text_sentences_mentioning_chapters_are_not_headings() -> None:
    text = "He read the chapter twice.\nThe part of it he liked was long, and he kept reading it all night long."
    assert len(chapters_from_text(text)) == 1


def test_plain_text_without_headings_is_one_chapter() -> None:
    assert chapters_from_text("Just some text\nwrapped here.") == [Chapter("Chapter 1", "Just some text wrapped here.")]
    assert chapters_from_text("  \n ") == []


def test_markdown_uses_the_most_frequent_top_heading_level() -> None:
    chapters = chapters_from_markdown(MARKDOWN)
    assert [c.title for c in chapters] == ["One", "Two"]
    first = chapters[0].text.split("\n\n")
    assert first[0] == "Hello <laugh> there, with a link and code."
    assert first[1:] == ["item a", "item b", "A section", "Section text."]
    assert "not spoken" not in chapters[0].text and "*" not in chapters[0].text
    assert chapters[1].text == "Bye."


def test_markdown_level_one_chapters_and_intro() -> None:
    md = "Intro line.\n\n# First\n\nA.\n\n## Sub\n\nB.\n\n# Second\n\nC.\n"
    chapters = chapters_from_markdown(md)
    assert chapters == [
        Chapter("Introduction", "Intro line."),
        Chapter("First", "A.\n\nSub\n\nB."),
        Chapter("Second", "C."),
    ]


def test_markdown_without_headings_is_one_chapter() -> None:
    assert chapters_from_markdown("Some **bold**\ntext.") == [Chapter("Chapter 1", "Some bold text.")]


def _epub_bytes(documents: list[tuple[str, str]], with_toc: bool = True) -> bytes:
    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("A Test Book")
    book.set_language("en")
    items = []
    for index, (title, body) in enumerate(documents, 1):
        item = epub.EpubHtml(title=title, file_name=f"text/chap_{index}.xhtml", lang="en")
        item.content = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    cover = epub.EpubHtml(title="Cover", file_name="text/cover.xhtml")
    cover.content = '<html><body><img src="cover.png" alt=""/></body></html>'
    book.add_item(cover)
    book.toc = items if with_toc else []
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = [cover, "nav", *items]
    buffer = io.BytesIO()
    epub.write_epub(buffer, book)
    return buffer.getvalue()


THREE_CHAPTERS = [
    ("The Beginning", "<h1>The Beginning</h1><p>First paragraph.</p><p>Second &amp; <em>last</em>.</p>"),
    ("The Middle", "<h2>The Middle</h2><div><p>Nested <b>text</b><br/>here.</p></div><script>x()</script>"),
    ("The End", "<section><h1>The End</h1><ul><li>one</li><li>two</li></ul></section>"),
]


def test_epub_three_chapters_in_spine_order() -> None:
    chapters = chapters_from_epub(_epub_bytes(THREE_CHAPTERS))
    assert chapters == [
        Chapter("The Beginning", "First paragraph.\n\nSecond & last."),
        Chapter("The Middle", "Nested text here."),
        Chapter("The End", "one\n\ntwo"),
    ]


def test_epub_titles_fall_back_to_the_first_heading() -> None:
    documents = [(f"ignored {i}", f"<h3>Heading {i}</h3><p>Body {i}.</p>") for i in range(3)]
    chapters = chapters_from_epub(_epub_bytes(documents, with_toc=False))
    assert [c.title for c in chapters] == ["Heading 0", "Heading 1", "Heading 2"]
    assert [c.text for c in chapters] == ["Body 0.", "Body 1.", "Body 2."]


@pytest.mark.parametrize("data", [b"", b"not a zip at all", b"PK\x03\x04broken zip"])
def test_unreadable_epub_is_an_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidRequestError, match="could not read the EPUB"):
        chapters_from_epub(data)


def test_detect_chapters_picks_the_reader() -> None:
    data = _epub_bytes(THREE_CHAPTERS)
    assert len(detect_chapters(data)) == 3  # by magic: zip with the EPUB mimetype
    assert len(detect_chapters(data, filename="book.bin", content_type="application/epub+zip")) == 3
    assert [c.title for c in detect_chapters(MARKDOWN.encode(), filename="book.md")] == ["One", "Two"]
    assert [c.title for c in detect_chapters(MARKDOWN)] == ["One", "Two"]  # Markdown headings sniffed
    as_text = detect_chapters(MARKDOWN.encode(), content_type="text/plain; charset=utf-8")
    assert len(as_text) == 1 and "## One" in as_text[0].text
    assert next(c.title for c in detect_chapters(PLAIN.encode("utf-8-sig"), filename="b.txt")) == "Chapter 1: The Start"
    assert detect_chapters("No headings here.", filename="my story.txt") == [Chapter("my story", "No headings here.")]


@pytest.mark.parametrize(
    ("data", "kwargs", "problem"),
    [
        (b"plain bytes", {"filename": "book.epub"}, "could not read the EPUB"),
        (b"\xff\xc3\x28", {}, "neither an EPUB nor UTF-8"),
        (b"   \n  ", {"filename": "empty.txt"}, "no text"),
    ],
)
def test_detect_chapters_errors(data: bytes, kwargs: dict, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem):
        detect_chapters(data, **kwargs)
