"""Input items: checked and given ids (`normalize`), and turned into chat messages (`messages`).
Pure: no I/O, no state.

Items, as OpenAI's reference shapes them:

- `message` (the `type` may be left out): role `user`, `system` or `developer` with a string or
  `input_text` / `input_image` / `input_file` parts; role `assistant` with a string or
  `output_text` / `refusal` parts (an earlier answer). Kept as `ResponseInputMessageItem` and
  `ResponseOutputMessage` shapes.
- `function_call` (`call_id`, `name`, `arguments`) and `function_call_output` (`call_id`,
  `output`: a string or content parts).
- `reasoning` and `file_search_call` (items of an earlier output sent back): kept, and not sent
  upstream: a chat request has no place for them (the search's passages were that turn's).

Anything else (`item_reference`, other tools' calls) is a 400 naming the item. An image or file
given by `file_id` or `file_url` is a 400 too: the gateway sends images by URL or data URL and
files as data (`file_data`).

To chat messages: user, system and developer messages keep their role, their parts become chat
parts (`text`, `image_url`, `file`); an assistant message becomes an assistant message with its
text; function calls become `tool_calls` of the assistant message before them (a new one when
there is none), and function outputs `tool` messages.
"""

from __future__ import annotations

from typing import Any

import orjson

from ai_gateway.errors import InvalidRequestError
from ai_gateway.responses import ids
from ai_gateway.responses.records import JSONItem

INPUT_ROLES = ("user", "system", "developer")
KEPT_TYPES = ("reasoning", "file_search_call")


def normalize(raw: str | list[dict[str, Any]] | None, where: str = "input") -> list[JSONItem]:
    """The request's input as items with ids, checked; a string is one user message."""
    if raw is None:
        return []
    if isinstance(raw, str):
        return [_input_message("user", [_text_part(raw)])]
    return [_item(item, f"{where}[{n}]") for n, item in enumerate(raw)]


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise _bad(f"Missing required parameter: '{where}.{key}' (a string).", f"{where}.{key}")
    return value


def _item(item: Any, where: str) -> JSONItem:
    if not isinstance(item, dict):
        raise _bad(f"Invalid value for '{where}': an input item is a JSON object.", where)
    kind = item.get("type", "message")
    if kind == "message":
        return _message(item, where)
    if kind == "function_call":
        return {
            "id": item.get("id") or ids.new_id(ids.FUNCTION_CALL),
            "type": "function_call",
            "call_id": _string(item, "call_id", where),
            "name": _string(item, "name", where),
            "arguments": _string(item, "arguments", where),
            "status": "completed",
        }
    if kind == "function_call_output":
        output = item.get("output")
        if not isinstance(output, str | list):
            raise _bad(
                f"Missing required parameter: '{where}.output' (a string or content parts).",
                f"{where}.output",
            )
        return {
            "id": item.get("id") or ids.new_id(ids.FUNCTION_OUTPUT),
            "type": "function_call_output",
            "call_id": _string(item, "call_id", where),
            "output": output,
            "status": "completed",
        }
    if kind in KEPT_TYPES:
        return dict(item)
    raise _bad(
        f"Invalid value for '{where}.type': {str(kind)[:64]!r} items are not supported by this "
        "gateway; send message, function_call, function_call_output or reasoning items "
        "(item_reference: send the item itself, or use previous_response_id).",
        f"{where}.type",
    )


def _message(item: dict[str, Any], where: str) -> JSONItem:
    role = item.get("role")
    content = item.get("content")
    if role not in (*INPUT_ROLES, "assistant"):
        raise _bad(
            f"Invalid value for '{where}.role': {str(role)[:32]!r}; the roles are user, system, "
            "developer and assistant.",
            f"{where}.role",
        )
    if isinstance(content, str):
        parts: list[Any] = [content]
    elif isinstance(content, list):
        parts = content
    else:
        raise _bad(
            f"Missing required parameter: '{where}.content' (a string or content parts).",
            f"{where}.content",
        )
    if role == "assistant":
        out = [_output_part(part, f"{where}.content[{n}]") for n, part in enumerate(parts)]
        return {
            "id": item.get("id") or ids.new_id(ids.MESSAGE),
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": out,
        }
    checked = [_input_part(part, f"{where}.content[{n}]") for n, part in enumerate(parts)]
    return _input_message(str(role), checked, item.get("id"))


def _input_message(role: str, content: list[JSONItem], item_id: Any = None) -> JSONItem:
    return {
        "id": item_id if isinstance(item_id, str) and item_id else ids.new_id(ids.MESSAGE),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": content,
    }


def _text_part(text: str) -> JSONItem:
    return {"type": "input_text", "text": text}


def _input_part(part: Any, where: str) -> JSONItem:
    if isinstance(part, str):
        return _text_part(part)
    if not isinstance(part, dict):
        raise _bad(f"Invalid value for '{where}': a content part is a JSON object.", where)
    kind = part.get("type")
    if kind in ("input_text", "text"):
        return _text_part(_string(part, "text", where))
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _bad(
                f"Invalid value for '{where}': send the image as 'image_url' (an https URL or a "
                "data URL); images by 'file_id' are not supported by this gateway.",
                f"{where}.image_url",
            )
        detail = part.get("detail") or "auto"
        return {"type": "input_image", "image_url": url, "detail": detail}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise _bad(
                f"Invalid value for '{where}': send the file as 'file_data' (a data URL); files "
                "by 'file_id' or 'file_url' are not supported by this gateway.",
                f"{where}.file_data",
            )
        kept: JSONItem = {"type": "input_file", "file_data": data}
        if isinstance(part.get("filename"), str):
            kept["filename"] = part["filename"]
        return kept
    raise _bad(
        f"Invalid value for '{where}.type': {str(kind)[:32]!r}; the input parts are input_text, "
        "input_image and input_file.",
        f"{where}.type",
    )


def _output_part(part: Any, where: str) -> JSONItem:
    if isinstance(part, str):
        return {"type": "output_text", "text": part, "annotations": []}
    if isinstance(part, dict) and part.get("type") in ("output_text", "input_text", "text"):
        return {"type": "output_text", "text": _string(part, "text", where), "annotations": []}
    if isinstance(part, dict) and part.get("type") == "refusal":
        return {"type": "refusal", "refusal": _string(part, "refusal", where)}
    raise _bad(
        f"Invalid value for '{where}': an assistant message's parts are output_text or refusal.",
        where,
    )


# -- to chat messages ----------------------------------------------------------------------------


def messages(items: list[JSONItem]) -> list[JSONItem]:
    """Chat messages saying what `items` say (items already checked by `normalize`, or an
    earlier response's output)."""
    out: list[JSONItem] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_chat_message(item))
        elif kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments") or ""},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": item["call_id"],
                    "content": _output_text(item.get("output")),
                }
            )
    return out


def _chat_message(item: JSONItem) -> JSONItem:
    role = item["role"]
    parts = item.get("content") or []
    if role == "assistant":
        text = "".join(
            str(p.get("text") if p.get("type") == "output_text" else p.get("refusal") or "")
            for p in parts
        )
        return {"role": "assistant", "content": text}
    chat_parts = [_chat_part(part) for part in parts]
    if len(chat_parts) == 1 and chat_parts[0]["type"] == "text":
        return {"role": role, "content": chat_parts[0]["text"]}
    return {"role": role, "content": chat_parts}


def _chat_part(part: JSONItem) -> JSONItem:
    kind = part["type"]
    if kind == "input_image":
        image = {"url": part["image_url"]}
        if part.get("detail") in ("low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {"file_data": part["file_data"]}
        if part.get("filename"):
            file["filename"] = part["filename"]
        return {"type": "file", "file": file}
    return {"type": "text", "text": part.get("text", "")}


def _output_text(output: Any) -> str:
    """A function's output as the tool message's text: a string as it is; content parts as
    their text (an image or file in a tool's output has no place in a chat tool message)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = [p.get("text") for p in output if isinstance(p, dict)]
        return "".join(t for t in texts if isinstance(t, str))
    return orjson.dumps(output).decode()
