"""Provider emulator: faithful OpenAI, Anthropic and Gemini wire formats on one port.

Used by the integration tests and examples over real sockets; see :mod:`.app` for the
entry points and :mod:`.text` for the deterministic text and token rule.
"""

from ai_gateway.emulator.app import EmulatorSettings, create_app, run, start

__all__ = ["EmulatorSettings", "create_app", "run", "start"]
