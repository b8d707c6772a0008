"""The start-up text `ai-gateway serve` prints when it runs in a terminal: where the gateway
listens, which model names it serves, and what to do next."""

from __future__ import annotations

from collections.abc import Sequence

from ai_gateway import __version__
from ai_gateway.demo import DEMO_MODELS
from ai_gateway.settings import Config


def start_banner(config: Config, names: Sequence[str], direct: Sequence[str]) -> str:
    settings = config.gateway
    url = f"http://{settings.host}:{settings.port}"
    auth = (
        ' -H "Authorization: Bearer $AI_GATEWAY_MASTER_KEY"'
        if settings.master_key is not None
        else ""
    )
    chat = next((n for n in names if "embedding" not in n), None)
    lines = [f"DevMentor AI Gateway {__version__} is listening on {url}", ""]
    if config.demo_upstream is not None:
        lines += [
            "DEMO MODE: no provider key and no config file is set, so a built-in emulator",
            "answers every request with canned text (no real model is called). Model names:",
        ]
        lines += [f"  {m.name:<16} {m.wire_format} wire format" for m in DEMO_MODELS]
    else:
        lines.append("Model names: " + (", ".join(names) if names else "(none configured)"))
        if direct:
            lines.append(
                "Also reachable as provider/<model>: " + ", ".join(f"{p}/..." for p in direct)
            )
    lines.append("")
    if chat is not None:
        lines += [
            "Try it:",
            f"  curl -s {url}/v1/chat/completions{auth} -H 'Content-Type: application/json' \\",
            f'    -d \'{{"model": "{chat}", "messages": [{{"role": "user", '
            '"content": "Hello"}]}\'',
            f"  or any OpenAI SDK with base_url={url}/v1",
            "",
        ]
    if config.demo_upstream is not None:
        lines += [
            "Real models: set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY (or pass",
            "--config FILE) and start again; demo mode then turns off.",
        ]
    lines.append(f"Models: {url}/v1/models   Health: {url}/health   Stop: Ctrl-C")
    return "\n".join(lines)
