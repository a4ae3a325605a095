"""Chapters for audiobook jobs: plain text, Markdown and EPUB books cut into titled chapters.

Every reader returns plain text meant to be spoken: markup stripped, hard-wrapped lines joined,
paragraphs separated by a blank line (the splitter treats line breaks as sentence boundaries).
Emotion and role tags written inline in Markdown survive; code blocks and images do not.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from fasttts.errors import InvalidRequestError, PayloadTooLargeError
from fasttts.text.tags import is_speech_tag

PREAMBLE_TITLE = "Introduction"
"""Title of the text before the first heading, when there is any."""
DEFAULT_TITLE = "Chapter 1"
"""Title of a book that has no headings at all."""

_NUMBER = (
    r"(?:\d+|[ivxlcdm]+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|[a-z]+-[a-z]+)"
)
_HEADING_RE = re.compile(
    rf"(?:(?:chapter|part|book)\s+{_NUMBER}\b(?:[\s.:—–-][^\n]*)?|prologue|epilogue|preface|afterword"
    r"|第[一二三四五六七八九十百千零〇两\d]+[章节回部卷篇](?:\s[^\n]*)?)",
    re.IGNORECASE,
)
_MAX_HEADING_LENGTH = 80
_UNDERLINE_RE = re.compile(r"(?:={3,}|-{3,})")
_BLANK_LINES_RE = re.compile(r"\n\s*\n")


@dataclass
class Chapter:
    """One chapter: its title (for chapter markers) and its text to speak."""

    title: str
    text: str


def _clean(text: str) -> str:
    return " ".join(text.split())


def _paragraphs_to_text(paragraphs: list[str]) -> str:
    return "\n\n".join(p for p in (_clean(p) for p in paragraphs) if p)


class _Builder:
    """Collects ``(title, paragraphs)`` sections; folds empty sections' titles into the next."""

    def __init__(self, default_title: str) -> None:
        self.default_title = default_title
        self.chapters: list[Chapter] = []
        self.title: str | None = None
        self.paragraphs: list[str] = []
        self.pending_titles: list[str] = []
        self.saw_heading = False

    def heading(self, title: str) -> None:
        self.close()
        self.title, self.saw_heading = _clean(title), True

    def paragraph(self, text: str) -> None:
        self.paragraphs.append(text)

    def close(self) -> None:
        text = _paragraphs_to_text(self.paragraphs)
        if text:
            titles = self.pending_titles + ([self.title] if self.title is not None else [])
            self.chapters.append(Chapter(": ".join(titles) or PREAMBLE_TITLE, text))
            self.pending_titles = []
        elif self.title is not None:
            self.pending_titles.append(self.title)
        self.title, self.paragraphs = None, []

    def finish(self) -> list[Chapter]:
        self.close()
        if not self.saw_heading and len(self.chapters) == 1:
            self.chapters[0].title = self.default_title
        return self.chapters


def chapters_from_text(text: str, default_title: str = DEFAULT_TITLE) -> list[Chapter]:
    """Plain text: "Chapter 1", "CHAPTER ONE", "Part II", "第一章" lines or ===/--- underlined lines."""
    builder = _Builder(default_title)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            builder.paragraph(" ".join(paragraph))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index].strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if line and len(line) <= _MAX_HEADING_LENGTH and _UNDERLINE_RE.fullmatch(following):
            end_paragraph()
            builder.heading(line)
            index += 2
            continue
        if len(line) <= _MAX_HEADING_LENGTH and _HEADING_RE.fullmatch(line):
            end_paragraph()
            builder.heading(line)
        elif line:
            paragraph.append(line)
        else:
            end_paragraph()
        index += 1
    end_paragraph()
    return builder.finish()


def _inline_text(token: Any) -> str:  # markdown_it.token.Token
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "html_inline" and is_speech_tag(child.content):
            parts.append(child.content)
    return "".join(parts)


def chapters_from_markdown(md: str, default_title: str = DEFAULT_TITLE) -> list[Chapter]:
    """Markdown: the more frequent of ``#`` and ``##`` headings starts chapters (``#`` on a tie)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(md)
    levels = [int(t.tag[1]) for t in tokens if t.type == "heading_open"]
    candidates = [level for level in levels if level <= 2] or ([min(levels)] if levels else [])
    chapter_level = max(sorted(set(candidates)), key=candidates.count) if candidates else None

    builder = _Builder(default_title)
    for index, token in enumerate(tokens):
        if token.type != "inline":
            continue
        opener = tokens[index - 1]
        if opener.type == "heading_open":
            level = int(opener.tag[1])
            if level == chapter_level:
                builder.heading(_inline_text(token))
                continue
            if chapter_level is not None and level < chapter_level:
                continue  # a book title above the chapters is not spoken as chapter text
        builder.paragraph(_inline_text(token))
    return builder.finish()


_BLOCK_TAGS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li ul ol blockquote pre section article header footer aside nav table tr td th dt dd dl figure figcaption body hr".split()
)
_SKIPPED_TAGS = frozenset("script style head title".split())


def html_paragraphs(root: Any) -> list[str]:  # lxml.html.HtmlElement
    """Text of an HTML tree, one entry per block element, whitespace collapsed."""
    parts: list[str] = []

    def walk(element: Any) -> None:
        tag = element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""
        if tag not in _SKIPPED_TAGS and tag:
            block = tag in _BLOCK_TAGS
            if block:
                parts.append("\n\n")
            parts.append(element.text or "")
            for child in element:
                walk(child)
            parts.append("\n\n" if block else " " if tag == "br" else "")
        if element.tail:
            parts.append(element.tail)

    walk(root)
    return [p for p in (_clean(p) for p in "".join(parts).split("\n\n")) if p]


def _toc_titles(toc: Any) -> dict[str, str]:
    """Flatten ebooklib's nested TOC into ``{document href: title}`` (first entry wins)."""
    titles: dict[str, str] = {}
    for entry in toc:
        if isinstance(entry, tuple):  # (Section, [children])
            section, children = entry
            if getattr(section, "href", None):
                titles.setdefault(section.href.split("#")[0], section.title)
            for href, title in _toc_titles(children).items():
                titles.setdefault(href, title)
        elif getattr(entry, "href", None) or getattr(entry, "file_name", None):
            href = getattr(entry, "href", None) or entry.file_name
            titles.setdefault(href.split("#")[0], _clean(getattr(entry, "title", "") or ""))
    return titles


EPUB_MAX_BYTES = 64 * 1024 * 1024
"""Most bytes an EPUB may unpack to, all members together. An EPUB is a zip, and a zip bomb
unpacks a megabyte into gigabytes; ebooklib reads every member whole, so this bounds its memory.
Far above any book: 64 MiB of XHTML is tens of millions of characters, beyond ``max_job_chars``."""
EPUB_MAX_RATIO = 100
"""Most a member above 1 MiB may expand over its compressed size (text deflates 3-10×)."""
EPUB_MAX_MEMBERS = 10_000
_RATIO_FLOOR = 1024 * 1024
_CHECK_CHUNK = 64 * 1024


def check_epub_archive(data: bytes) -> None:
    """Refuse an EPUB that would unpack too far before ebooklib reads it (ebooklib reads each
    member whole, and Python's zipfile, asked for a whole member, unpacks all its data at once).

    First by the sizes its zip directory declares: the member count, the total, and each member's
    compression ratio. Then by what the members actually unpack to, read in small chunks: zipfile
    stops a member at its declared size and then fails its CRC check, so a member that lies about
    its size ends here with no more than a chunk of it in memory."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            _check_declared_sizes(members)
            for m in members:
                with archive.open(m) as member:
                    while member.read(_CHECK_CHUNK):
                        pass
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, ValueError, EOFError) as exc:
        raise InvalidRequestError(f"could not read the EPUB file ({exc})", param="file") from None


def _check_declared_sizes(members: list[zipfile.ZipInfo]) -> None:
    if len(members) > EPUB_MAX_MEMBERS:
        raise PayloadTooLargeError(f"the EPUB has {len(members)} members, more than {EPUB_MAX_MEMBERS}", param="file")
    declared = sum(m.file_size for m in members)
    if declared > EPUB_MAX_BYTES:
        raise PayloadTooLargeError(f"the EPUB unpacks to {declared:,} bytes, more than {EPUB_MAX_BYTES:,}", param="file")
    for m in members:
        if m.file_size > _RATIO_FLOOR and m.file_size > EPUB_MAX_RATIO * max(m.compress_size, 1):
            raise PayloadTooLargeError(
                f"EPUB member {m.filename!r} expands {m.file_size // max(m.compress_size, 1)}x (more than {EPUB_MAX_RATIO}x): refused as a zip bomb",
                param="file",
            )


def chapters_from_epub(data: bytes) -> list[Chapter]:
    """EPUB: one chapter per spine document that has text; title from the TOC, else its first heading."""
    import ebooklib
    import lxml.html
    from ebooklib import epub

    check_epub_archive(data)
    try:
        book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    except Exception as exc:  # ebooklib raises bare KeyError/lxml/zip errors on broken files
        reason = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
        raise InvalidRequestError(f"could not read the EPUB file ({reason})", param="file") from exc

    titles = _toc_titles(book.toc)
    by_basename = {posixpath.basename(href): title for href, title in titles.items()}
    chapters: list[Chapter] = []
    for idref, *_ in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue
        content = item.get_content()
        if not content or not content.strip():
            continue
        try:
            root = lxml.html.document_fromstring(content)
        except (ValueError, lxml.etree.ParserError):
            continue
        paragraphs = html_paragraphs(root.body if root.find("body") is not None else root)
        if not paragraphs:
            continue
        name = item.get_name()
        heading = next(root.iter("h1", "h2", "h3", "h4", "h5", "h6"), None)
        title = titles.get(name) or by_basename.get(posixpath.basename(name))
        title = title or (_clean(heading.text_content()) if heading is not None else "")
        title = title or f"Chapter {len(chapters) + 1}"
        if paragraphs[0] == title:
            paragraphs = paragraphs[1:]
        if paragraphs:
            chapters.append(Chapter(title, "\n\n".join(paragraphs)))
    return chapters


def _is_epub(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            mimetype = archive.getinfo("mimetype")
            return mimetype.file_size < 64 and archive.read(mimetype).strip() == b"application/epub+zip"
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, NotImplementedError, RuntimeError):
        return False


def _decode(data: bytes) -> str:
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError("the file is neither an EPUB nor UTF-8 text", param="file") from exc


def detect_chapters(data: bytes | str, filename: str | None = None, content_type: str | None = None) -> list[Chapter]:
    """Read a book in whichever format it is: by extension, then content type, then content.

    Raises :class:`~fasttts.errors.InvalidRequestError` for unreadable files and books with no text.
    """
    extension = posixpath.splitext((filename or "").lower())[1]
    media_type = (content_type or "").split(";")[0].strip().lower()
    default_title = posixpath.splitext(posixpath.basename(filename))[0] if filename else DEFAULT_TITLE

    if isinstance(data, bytes) and (extension == ".epub" or media_type == "application/epub+zip" or _is_epub(data)):
        chapters = chapters_from_epub(data)
    else:
        text = data if isinstance(data, str) else _decode(data)
        markdown = extension in (".md", ".markdown") or media_type in ("text/markdown", "text/x-markdown")
        if not markdown and extension not in (".txt", ".text") and media_type != "text/plain":
            markdown = re.search(r"^#{1,2} \S", text, re.MULTILINE) is not None
        reader = chapters_from_markdown if markdown else chapters_from_text
        chapters = reader(text, default_title)
    if not chapters:
        raise InvalidRequestError("the book contains no text to read", param="file")
    return chapters
