"""OpenAI content parts -> Anthropic content blocks: images, PDF files, cache_control."""

from __future__ import annotations

import pytest
from test_anthropic_request import body_of, refused


def test_images_data_urls_and_http_urls() -> None:
    body = body_of(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
                    },
                ],
            }
        ]
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("data:image/tiff;base64,AAAA", "image/tiff"),
        ("data:image/png,rawbytes", "base64 data URL"),
        ("ftp://example.com/cat.png", "base64 data URL"),
    ],
)
def test_unusable_images_are_a_400(url: str, problem: str) -> None:
    err = refused([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert problem in err.message
    assert err.param == "messages[0].content[0].image_url.url"


def test_pdf_files_become_documents_and_other_parts_are_refused() -> None:
    pdf = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
    }
    body = body_of([{"role": "user", "content": [pdf, {"type": "text", "text": "Summarise"}]}])
    assert body["messages"][0]["content"][0] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
        "title": "a.pdf",
    }
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    assert "input_audio" in refused([{"role": "user", "content": [audio]}]).message
    by_id = {"type": "file", "file": {"file_id": "file-123"}}
    assert "file_data" in refused([{"role": "user", "content": [by_id]}]).message


def test_cache_control_on_parts_is_passed_on() -> None:
    part = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    body = body_of([{"role": "system", "content": [part]}, {"role": "user", "content": [part]}])
    expected = {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}
    assert body["system"] == [expected]
    assert body["messages"][0]["content"] == [expected]
