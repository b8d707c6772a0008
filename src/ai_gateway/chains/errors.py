"""The errors a chain run can end with, besides those of its steps (which keep their own status,
their message saying which step): the client asked too much (400), a step's answer was not the
output the chain needs (502: the model's answer, not the request, was at fault), the run went
past its time bound (504)."""

from __future__ import annotations

from ai_gateway.errors import GatewayError, InvalidRequestError, UpstreamError


class ChainRequestError(InvalidRequestError):
    """A chain's definition, variables or a step's variables that cannot be used (400)."""


class ChainStepOutputError(UpstreamError):
    """A step answered, but not with what its `output` asks for (JSON, matching its schema)."""

    default_code = "chain_step_output_invalid"


class ChainTimeoutError(GatewayError):
    """The run went past its time bound; the steps that ran are recorded."""

    status = 504
    type = "timeout_error"
    default_code = "chain_timeout"
