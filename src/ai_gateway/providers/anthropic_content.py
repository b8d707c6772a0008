"""OpenAI message content parts -> Anthropic content blocks. Pure: no I/O, no state.

``text`` -> text blocks (empty strings are skipped); ``image_url`` -> image blocks: a
``data:<type>;base64,`` URL becomes a base64 source, an http(s) URL a url source (``detail``
has no equivalent and is dropped); ``file`` with PDF ``file_data`` -> a base64 document block
(``filename`` becomes its ``title``). A ``cache_control`` object on a part is passed on, so
that clients can use Anthropic's prompt caching. Any other part (``input_audio``, files by
``file_id``, ...) is a 400 rather than a silent loss.
"""

from __future__ import annotations

import re

from ai_gateway.errors import InvalidRequestError
from ai_gateway.providers.base import JSONObject
from ai_gateway.schemas.chat import ContentPart

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)


def text_block(text: str, part: ContentPart | None = None) -> JSONObject:
    block: JSONObject = {"type": "text", "text": text}
    return with_cache_control(block, part)


def with_cache_control(block: JSONObject, part: ContentPart | None) -> JSONObject:
    extra = part.model_extra if part is not None else None
    cache_control = extra.get("cache_control") if extra else None
    if isinstance(cache_control, dict):
        block["cache_control"] = cache_control
    return block


def text_only(content: str | list[ContentPart] | None, where: str) -> list[JSONObject]:
    if content is None:
        return []
    if isinstance(content, str):
        return [text_block(content)] if content else []
    blocks = []
    for j, part in enumerate(content):
        if part.type != "text":
            raise InvalidRequestError(
                f"{where}.content[{j}]: this message may only hold text parts for Anthropic "
                f"models, not '{part.type}'.",
                param=f"{where}.content[{j}].type",
            )
        if part.text:
            blocks.append(text_block(part.text, part))
    return blocks


def user_blocks(content: str | list[ContentPart] | None, where: str) -> list[JSONObject]:
    if content is None or isinstance(content, str):
        return text_only(content, where)
    blocks = []
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        if part.type == "text":
            if part.text:
                blocks.append(text_block(part.text, part))
        elif part.type == "image_url" and part.image_url is not None:
            blocks.append(with_cache_control(_image(part.image_url.url, here), part))
        elif part.type == "file":
            blocks.append(with_cache_control(_document(part, here), part))
        else:
            raise InvalidRequestError(
                f"{here}: content parts of type '{part.type}' are not supported by Anthropic "
                "models (text, image_url and PDF file parts are).",
                param=f"{here}.type",
            )
    return blocks


def _image(url: str, where: str) -> JSONObject:
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _base64_data_url(url, f"{where}.image_url.url", "an image")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise InvalidRequestError(
            f"{where}: image type '{media_type}' is not supported by Anthropic models; "
            f"send one of {', '.join(IMAGE_MEDIA_TYPES)}.",
            param=f"{where}.image_url.url",
        )
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(part: ContentPart, where: str) -> JSONObject:
    spec = (part.model_extra or {}).get("file")
    file_data = spec.get("file_data") if isinstance(spec, dict) else None
    if not isinstance(file_data, str):
        raise InvalidRequestError(
            f"{where}: Anthropic models need the file inline as 'file.file_data' (a base64 "
            "data URL); uploaded file ids cannot be forwarded.",
            param=f"{where}.file",
        )
    media_type, data = _base64_data_url(file_data, f"{where}.file.file_data", "a file")
    if media_type != "application/pdf":
        raise InvalidRequestError(
            f"{where}: file type '{media_type}' is not supported by Anthropic models; "
            "only application/pdf files are.",
            param=f"{where}.file.file_data",
        )
    block: JSONObject = {
        "type": "document",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }
    filename = spec.get("filename") if isinstance(spec, dict) else None
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _base64_data_url(url: str, param: str, what: str) -> tuple[str, str]:
    match = _DATA_URL.fullmatch(url)
    if match is None or ";base64" not in match["params"].lower():
        raise InvalidRequestError(
            f"{param} must be an http(s) URL or a base64 data URL "
            f"('data:<media type>;base64,...') for {what} sent to Anthropic models.",
            param=param,
        )
    return match["type"].strip().lower(), match["data"]
