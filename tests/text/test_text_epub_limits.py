"""EPUB zip bombs are refused before they are unpacked: by the sizes the archive declares, and a
member that lies about its size by what it actually unpacks to. Peak memory is measured."""

import pytest
from limits_tools import MiB, epub_bomb, peak_memory_growth

from fasttts.errors import InvalidRequestError, PayloadTooLargeError
from fasttts.text import detect_chapters
from fasttts.text.chapters import EPUB_MAX_BYTES, EPUB_MAX_RATIO, chapters_from_epub

MEMORY_BOUND = 32 * MiB


def test_a_small_honest_book_still_reads() -> None:
    chapters = chapters_from_epub(epub_bomb(64 * 1024))
    assert len(chapters) == 1 and chapters[0].text.startswith("All work and no play.")


def test_a_bomb_is_refused_by_its_declared_size_before_it_is_unpacked() -> None:
    bomb = epub_bomb(4 * EPUB_MAX_BYTES)  # 256 MiB of text in a few hundred kB
    assert len(bomb) < 2 * MiB
    with peak_memory_growth() as growth, pytest.raises(PayloadTooLargeError, match="unpacks to 268,4") as caught:
        detect_chapters(bomb, filename="book.epub")
    assert caught.value.param == "file"
    assert growth() < MEMORY_BOUND


def test_a_member_that_expands_too_far_is_refused_under_the_total_cap() -> None:
    bomb = epub_bomb(16 * MiB)  # under the total cap, but a thousandfold expansion
    with pytest.raises(PayloadTooLargeError, match=f"more than {EPUB_MAX_RATIO}x") as caught:
        detect_chapters(bomb)  # sniffed as an EPUB by its mimetype member
    assert caught.value.param == "file" and "chapter.xhtml" in caught.value.message


def test_a_member_lying_about_its_size_is_caught_while_it_is_read() -> None:
    liar = epub_bomb(4 * EPUB_MAX_BYTES, declared=2000)  # declares 2 kB, unpacks to 256 MiB
    with peak_memory_growth() as growth, pytest.raises(InvalidRequestError, match="CRC") as caught:
        detect_chapters(liar, filename="book.epub")
    assert not isinstance(caught.value, PayloadTooLargeError) and caught.value.param == "file"
    assert growth() < MEMORY_BOUND


def test_a_huge_mimetype_member_is_not_read_to_sniff_the_format() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("mimetype", "w") as member:
        for _ in range(256):
            member.write(b"application/epub+zip" + b" " * (MiB - 20))
    with peak_memory_growth() as growth, pytest.raises(InvalidRequestError, match="neither an EPUB nor UTF-8"):
        detect_chapters(out.getvalue())
    assert growth() < MEMORY_BOUND
