"""What the pipeline asks before it spends: can the request be charged, and how much can it
cost at most.

- A caller under a budget may not use a model the registry has no price for (its cost could
  not be charged): `check_request` refuses it before routing (every deployment of the name),
  `check_attempt` before each attempt (fallbacks, hedges, fan-out branches), so nothing reaches
  such an upstream. The refusal is 403 `model_not_priced`, naming the model and how to price it.
  A router fallback to such a name is skipped instead (`reach`), as one the caller may not use.
- `max_cost`: the most a request can cost (usage/estimate.py), reserved against its budgets at
  admission (security/admission.py) and given back when it is settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ai_gateway.errors import GatewayError
from ai_gateway.providers.base import JSONObject
from ai_gateway.request_info import Reach, RequestInfo
from ai_gateway.routing.deployments import Deployment, DeploymentTable
from ai_gateway.usage.recorder import UsageRecorder


class Charges:
    def __init__(self, deployments: DeploymentTable | None, recorder: UsageRecorder) -> None:
        self._deployments = deployments
        self._recorder = recorder

    def check_request(self, model: str, info: RequestInfo) -> None:
        """Under a budget, every deployment `model` routes to must have a price."""
        if not info.priced_only or self._deployments is None:
            return
        try:
            deployments = self._deployments.resolve(model)
        except GatewayError:
            return  # an unknown name: routing reports it
        for deployment in deployments:
            self._recorder.require_price(deployment.provider, deployment.model, model)

    def reach(self, info: RequestInfo) -> Reach | None:
        """What the router asks before it moves the request to a fallback name: under a
        budget, a name with a deployment the registry cannot price is skipped (like one the
        caller may not use); then the request's own `reach` (allowed models, limits)."""
        allowed = info.reach
        if not info.priced_only or self._deployments is None:
            return allowed
        deployments = self._deployments
        recorder = self._recorder

        async def reach(name: str) -> bool:
            try:
                targets = deployments.resolve(name)
            except GatewayError:
                return False
            if not all(recorder.priced(d.provider, d.model) for d in targets):
                return False
            return allowed is None or await allowed(name)

        return reach

    def check_attempt(self, deployment: Deployment, info: RequestInfo) -> None:
        if info.priced_only:
            self._recorder.require_price(deployment.provider, deployment.model, deployment.group)

    def max_cost(self, models: Sequence[str], body: JSONObject) -> Decimal | None:
        """The most a request for `models` (several: a fan-out, every one is called) can cost:
        for each name, its dearest deployment. None when one cannot be priced (or the name is
        unknown: routing says so)."""
        if self._deployments is None:
            return None
        total = Decimal(0)
        for model in models:
            try:
                deployments = self._deployments.resolve(model)
            except GatewayError:
                return None
            costs = [self._recorder.max_cost(d.provider, d.model, body) for d in deployments]
            known = [cost for cost in costs if cost is not None]
            if not known or len(known) < len(costs):
                return None
            total += max(known)
        return total
