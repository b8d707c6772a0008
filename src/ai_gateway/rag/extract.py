"""The text of an uploaded file, for chunking: plain text, Markdown and source code as they are
(decoded, line ends made `\\n`), HTML as the text a reader sees, PDF as its text layer.

The kind of a file is its name's extension. A file of another kind raises UnsupportedFileError
(the client gets a 400 naming the supported ones); one that cannot be read (not UTF-8 or UTF-16,
binary, a corrupt or encrypted PDF, a PDF of scanned pages) raises InvalidFileError saying why,
in a message cut short. Reading is CPU work: callers run `extract_text` in a worker thread.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Literal

Kind = Literal["text", "markdown", "code", "html", "pdf"]

_CODE = (
    *(".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".go", ".rs"),
    *(".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".kt", ".kts"),
    *(".scala", ".sh", ".bash", ".sql", ".json", ".yaml", ".yml", ".toml", ".css", ".xml"),
    *(".tex", ".r", ".lua", ".pl", ".dart", ".vue", ".ini", ".cfg"),
)
SUPPORTED: Mapping[str, Kind] = MappingProxyType(
    {
        ".txt": "text",
        ".md": "markdown",
        ".markdown": "markdown",
        **dict.fromkeys(_CODE, "code"),
        ".html": "html",
        ".htm": "html",
        ".pdf": "pdf",
    }
)

MAX_MESSAGE = 300
NO_TEXT_LAYER = "the PDF has no text layer (scanned pages are not read)"


class UnsupportedFileError(Exception):
    """The file's kind is not one this gateway reads."""

    def __init__(self, extension: str) -> None:
        self.extension = extension
        supported = ", ".join(sorted(SUPPORTED))
        what = f"'{extension[:32]}' files are" if extension else "files without an extension are"
        super().__init__(f"{what} not supported; supported file types: {supported}")


class InvalidFileError(Exception):
    """The file is of a supported kind but cannot be read; the message says why."""

    def __init__(self, reason: str) -> None:
        if len(reason) > MAX_MESSAGE:
            reason = reason[: MAX_MESSAGE - 3] + "..."
        super().__init__(reason)


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return f".{suffix.lower()}" if dot and stem and suffix else ""


def check_supported(filename: str) -> Kind:
    """The kind of file `filename` names, or UnsupportedFileError."""
    extension = _extension(filename)
    kind = SUPPORTED.get(extension)
    if kind is None:
        raise UnsupportedFileError(extension)
    return kind


def extract_text(filename: str, data: bytes) -> str:
    """The text of the file `filename` holding `data` (an empty file has the empty text)."""
    kind = check_supported(filename)
    if kind == "pdf":
        return _pdf_text(data)
    if kind == "html":
        return html_text(_decode(data, _declared_charset(data)))
    return _decode(data)


_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _decode(data: bytes, charset: str | None = None) -> str:
    """`data` as text: by its byte order mark (UTF-8 or UTF-16), else `charset`, else UTF-8."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    if encoding is None and b"\x00" in data:
        raise InvalidFileError("the file is binary, not text (it holds NUL bytes)")
    encoding = encoding or charset or "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InvalidFileError(
            f"the file is not {exc.encoding.upper()} text (an invalid byte at offset {exc.start})"
        ) from None
    if "\x00" in text:
        raise InvalidFileError("the file is binary, not text (it holds NUL characters)")
    return _newlines(text)


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I)


def _declared_charset(data: bytes) -> str | None:
    """The charset an HTML page declares in a <meta> near its start, if Python knows it."""
    found = _CHARSET.search(data, 0, 4096)
    if found is None:
        return None
    name = found.group(1).decode("ascii")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


# --- HTML -------------------------------------------------------------------------------------

# Elements whose content is not text a reader sees.
_HIDDEN = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "math"})
# Elements that may stand in <head>: any other start tag ends an unclosed head, as in browsers.
_HEAD_CONTENT = frozenset({"title", "meta", "link", "style", "script", "base", "noscript"})
# Elements that stand apart from what surrounds them: by a blank line, or by a line break.
_PARAGRAPHS = frozenset(
    {
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol"),
        *("dl", "section", "article", "header", "footer", "nav", "aside", "main", "figure"),
        *("form", "fieldset", "details", "address", "hr", "body"),
    }
)
_LINES = frozenset(
    {"br", "div", "li", "tr", "dt", "dd", "figcaption", "summary", "caption", "option"}
)
_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"\s+")


def html_text(markup: str) -> str:
    """The text of an HTML page as a reader sees it: scripts, styles and the head left out,
    entities resolved, blocks on lines of their own (paragraphs apart by a blank line), runs of
    white space made one space except inside <pre>."""
    parser = _TextParser()
    parser.feed(markup)
    parser.close()
    return parser.result()


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden: list[str] = []  # the hidden elements we are inside, innermost last
        self._pre = 0
        self._newlines = 2  # newlines at the end of the output (the start counts as a break)
        self._space = False  # a space is due before the next word

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden == ["head"] and tag not in _HEAD_CONTENT:
            self._hidden.clear()
        if self._hidden or tag in _HIDDEN:
            if tag in _HIDDEN:
                self._hidden.append(tag)
            return
        self._block(tag)
        if tag == "pre":
            self._pre += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._hidden:
            self._block(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            if tag in self._hidden:
                del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        self._block(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden or not data:
            return
        if self._pre:  # kept as it is
            self._emit(data)
            trailing = len(data) - len(data.rstrip("\n"))
            self._newlines = trailing if trailing < len(data) else self._newlines + trailing
            return
        words = _SPACES.sub(" ", data)
        if words.startswith(" "):
            self._space = True
        words = words.strip(" ")
        if words:
            self._emit(words)
            self._newlines = 0
            self._space = data[-1].isspace()

    def _emit(self, text: str) -> None:
        if self._space and self._newlines == 0:
            self._parts.append(" ")
        self._space = False
        self._parts.append(text)

    def _block(self, tag: str) -> None:
        if tag in _PARAGRAPHS:
            self._break(2)
        elif tag in _LINES:
            self._break(1)
        elif tag in _CELLS and self._newlines == 0:
            self._space = True

    def _break(self, lines: int) -> None:
        self._space = False
        if self._newlines < lines:
            self._parts.append("\n" * (lines - self._newlines))
            self._newlines = lines

    def result(self) -> str:
        return "".join(self._parts).strip("\n").rstrip()


# --- PDF --------------------------------------------------------------------------------------


def _pdf_text(data: bytes) -> str:
    """The PDF's pages' text, apart by blank lines."""
    if b"%PDF-" not in data[:1024]:
        raise InvalidFileError("the file is not a PDF (it has no %PDF- header)")
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidFileError("the PDF is encrypted with a password")
        pages = [page.extract_text() for page in reader.pages]
    except InvalidFileError:
        raise
    except Exception as exc:  # pypdf raises many kinds, not all its own, on a broken file
        raise InvalidFileError(f"the PDF cannot be read: {_reason(exc)}") from None
    texts = [text for page in pages if (text := _newlines(page).replace("\x00", "").strip())]
    if not texts:
        raise InvalidFileError(NO_TEXT_LAYER)
    return "\n\n".join(texts)


def _reason(exc: Exception) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
