"""Emulators of the DevMentor Memory, Project and Learning services (docs/integrations.md):
seeded, deterministic, with controllable faults. See :mod:`.app` for the entry points."""

from ai_gateway.emulator.services.app import (
    DEFAULT_PORTS,
    SERVICES,
    ServiceName,
    ServiceSettings,
    create_app,
    run,
    start,
)
from ai_gateway.emulator.services.faults import ServiceFaults

__all__ = [
    "DEFAULT_PORTS",
    "SERVICES",
    "ServiceFaults",
    "ServiceName",
    "ServiceSettings",
    "create_app",
    "run",
    "start",
]
