"""Reading uploaded files for RAG: which kinds are taken, and the text each gives."""

from __future__ import annotations

import codecs
import io

import pytest
from pypdf import PdfReader, PdfWriter

from ai_gateway.rag.extract import (
    MAX_MESSAGE,
    NO_TEXT_LAYER,
    SUPPORTED,
    InvalidFileError,
    UnsupportedFileError,
    check_supported,
    extract_text,
    html_text,
)


def make_pdf(pages: list[list[str]]) -> bytes:
    """A valid PDF, written by hand: one page per item, each line a line of Helvetica text."""
    font = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
    ]
    for i, lines in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# --- kinds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "kind"),
    [
        ("notes.txt", "text"),
        ("README.md", "markdown"),
        ("guide.MARKDOWN", "markdown"),
        ("app.py", "code"),
        ("src/main.rs", "code"),
        ("C:\\work\\Main.Java", "code"),
        ("config.yaml", "code"),
        ("page.html", "html"),
        ("page.HTM", "html"),
        ("paper.pdf", "pdf"),
    ],
)
def test_kind_is_by_extension_in_any_case(filename: str, kind: str) -> None:
    assert check_supported(filename) == kind


@pytest.mark.parametrize(
    ("filename", "named"),
    [
        ("photo.png", "'.png' files are not supported"),
        ("archive.tar.gz", "'.gz' files are not supported"),
        ("Makefile", "files without an extension are not supported"),
        (".bashrc", "files without an extension are not supported"),
        ("trailing.", "files without an extension are not supported"),
    ],
)
def test_an_unsupported_file_is_named_with_the_supported_types(filename: str, named: str) -> None:
    with pytest.raises(UnsupportedFileError) as raised:
        check_supported(filename)
    message = str(raised.value)
    assert named in message
    assert all(extension in message for extension in (".txt", ".md", ".py", ".html", ".pdf"))


def test_extract_refuses_an_unsupported_file() -> None:
    with pytest.raises(UnsupportedFileError, match=r"'\.docx'"):
        extract_text("report.docx", b"PK\x03\x04")


def test_every_supported_extension_is_lower_case_with_a_dot() -> None:
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED)
    assert set(SUPPORTED.values()) == {"text", "markdown", "code", "html", "pdf"}


# --- text -----------------------------------------------------------------------------------


def test_utf8_text_is_read_with_line_ends_made_newlines() -> None:
    data = "Grüße\r\nfrom 東京 🚀\rend".encode()
    assert extract_text("a.txt", data) == "Grüße\nfrom 東京 🚀\nend"


def test_a_utf8_byte_order_mark_is_dropped() -> None:
    assert extract_text("a.md", codecs.BOM_UTF8 + b"# Title") == "# Title"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_a_byte_order_mark_is_read(codec: str) -> None:
    bom = codecs.BOM_UTF16_LE if codec.endswith("le") else codecs.BOM_UTF16_BE
    data = bom + "def f():\n    return 'é'\n".encode(codec)
    assert extract_text("f.py", data) == "def f():\n    return 'é'\n"


def test_an_empty_file_has_empty_text() -> None:
    assert extract_text("empty.txt", b"") == ""


def test_binary_data_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="binary"):
        extract_text("a.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00")


def test_text_that_is_not_utf8_is_invalid_and_says_where() -> None:
    with pytest.raises(InvalidFileError, match=r"not UTF-8 text .*offset 3"):
        extract_text("a.txt", b"caf\xe9 au lait")


def test_utf16_of_odd_length_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="UTF-16"):
        extract_text("a.txt", codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00")


# --- HTML -----------------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>Tab title</title><meta charset="utf-8">
<style>p { color: red }</style>
<script>var s = "<p>not text</p>";</script></head>
<body>
  <h1>Hello &amp; welcome</h1>
  <p>This   is
     a <b>bold</b> move.&nbsp;Done&hellip; &#x1F680;</p>
  <ul><li>one</li><li>two</li></ul>
  <pre>  code
    indented</pre>
  <table><tr><th>a</th><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
  line<br>break<div>x</div><div>y</div>
  <noscript>enable js</noscript><!-- a comment -->
</body></html>
"""


def test_html_gives_the_text_a_reader_sees() -> None:
    assert extract_text("page.html", PAGE.encode()) == (
        "Hello & welcome\n\n"
        "This is a bold move. Done… 🚀\n\n"
        "one\ntwo\n\n"
        "  code\n    indented\n\n"
        "a b\nc d\n\n"
        "line\nbreak\nx\ny"
    )


def test_an_unclosed_head_ends_where_the_body_starts() -> None:
    assert html_text("<html><head><title>t</title><p>Body text</p>") == "Body text"


def test_html_in_a_declared_charset_is_decoded_with_it() -> None:
    data = '<meta charset="windows-1252"><p>café</p>'.encode("cp1252")
    assert extract_text("old.htm", data) == "café"


def test_html_with_an_unknown_charset_falls_back_to_utf8() -> None:
    data = '<meta charset="klingon"><p>naïve</p>'.encode()
    assert extract_text("page.html", data) == "naïve"


def test_html_not_in_its_charset_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="UTF-8"):
        extract_text("page.html", b"<p>caf\xe9</p>")


def test_html_of_scripts_alone_has_no_text() -> None:
    assert html_text("<script>alert(1)</script><style>x{}</style>") == ""


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_are_read_and_set_apart_by_blank_lines() -> None:
    pdf = make_pdf([["Hello PDF world.", "Second line (with parens)."], ["Page two text."]])
    assert len(pdf) < 2000
    assert extract_text("paper.pdf", pdf) == (
        "Hello PDF world.\nSecond line (with parens).\n\nPage two text."
    )


def test_a_pdf_of_pages_without_text_has_no_text_layer() -> None:
    with pytest.raises(InvalidFileError) as raised:
        extract_text("scan.pdf", make_pdf([[], []]))
    assert str(raised.value) == NO_TEXT_LAYER


def test_a_blank_page_among_text_pages_is_skipped() -> None:
    assert extract_text("a.pdf", make_pdf([["one"], [], ["three"]])) == "one\n\nthree"


@pytest.mark.parametrize(
    "data",
    [
        make_pdf([["Hello PDF world."]])[:200],  # truncated
        b"%PDF-1.7\n" + bytes(range(256)) * 8,  # a header, then garbage
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R >>\nendobj\ntrailer\n<< >>\n",
    ],
    ids=["truncated", "garbage", "no-pages"],
)
def test_a_corrupt_pdf_is_invalid_with_a_short_reason(data: bytes) -> None:
    with pytest.raises(InvalidFileError, match=r"^the PDF cannot be read: ") as raised:
        extract_text("broken.pdf", data)
    assert len(str(raised.value)) <= MAX_MESSAGE
    assert raised.value.__cause__ is None


def test_a_file_named_pdf_that_is_not_one_is_invalid() -> None:
    with pytest.raises(InvalidFileError, match="not a PDF"):
        extract_text("fake.pdf", b"just some text")


def test_a_pdf_locked_with_a_password_is_invalid() -> None:
    locked = encrypted(make_pdf([["Top secret."]]), user_password="s3cret-pw")
    with pytest.raises(InvalidFileError, match="encrypted with a password") as raised:
        extract_text("locked.pdf", locked)
    assert "s3cret" not in str(raised.value)


def test_a_pdf_encrypted_without_a_user_password_is_read() -> None:
    # Permission-only encryption: every viewer opens it, and so do we.
    pdf = encrypted(make_pdf([["Readable by all."]]), user_password="")
    assert extract_text("open.pdf", pdf) == "Readable by all."


def test_a_long_reason_is_cut_short() -> None:
    error = InvalidFileError("x" * 5000)
    assert len(str(error)) == MAX_MESSAGE
    assert str(error).endswith("...")
