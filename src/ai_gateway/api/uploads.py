"""A `multipart/form-data` body (a file upload), read whole under a size limit and split into
its text fields and files. The limit is checked while the body arrives (read_body), so an
upload past it costs no more than the limit; a body that is not well-formed multipart is a 400
that says so."""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ai_gateway.api.common import BodyLimit, read_body
from ai_gateway.errors import InvalidRequestError

MAX_PARTS = 16


@dataclass(slots=True)
class UploadedFile:
    filename: str
    data: bytes


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data: list[bytes] = []
        self.header_name = b""
        self.header_value: list[bytes] = []


async def read_form(request: Request, limit: BodyLimit) -> Form:
    kind, options = parse_options_header(request.headers.get("content-type"))
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "Send the file as multipart/form-data (a 'file' part and a 'purpose' field), as "
            "the OpenAI SDKs do.",
            code="invalid_content_type",
        )
    body = await read_body(request, limit)
    return parse_form(body, boundary)


def parse_form(body: bytes, boundary: bytes) -> Form:
    parts: list[_Part] = []

    def begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise MultipartParseError(f"more than {MAX_PARTS} parts")
        parts.append(_Part())

    def data(chunk: bytes, start: int, end: int) -> None:
        parts[-1].data.append(chunk[start:end])

    def header_field(chunk: bytes, start: int, end: int) -> None:
        parts[-1].header_name += chunk[start:end]

    def header_value(chunk: bytes, start: int, end: int) -> None:
        parts[-1].header_value.append(chunk[start:end])

    def header_end() -> None:
        part = parts[-1]
        part.headers[part.header_name.lower()] = b"".join(part.header_value)
        part.header_name, part.header_value = b"", []

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": begin,
            "on_part_data": data,
            "on_header_field": header_field,
            "on_header_value": header_value,
            "on_header_end": header_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequestError(
            f"The multipart/form-data body is not well-formed: {str(exc)[:200]}",
            code="invalid_multipart",
        ) from None
    form = Form()
    for part in parts:
        disposition, options = parse_options_header(part.headers.get(b"content-disposition"))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            continue
        key = name.decode("utf-8", "replace")
        content = b"".join(part.data)
        filename = options.get(b"filename")
        if filename is not None:
            form.files[key] = UploadedFile(filename.decode("utf-8", "replace"), content)
        else:
            form.fields[key] = content.decode("utf-8", "replace")
    return form
