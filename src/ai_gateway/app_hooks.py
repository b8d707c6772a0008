"""App assembly of the hooks (docs/hooks.md): each configured hook's function (Python ones
imported here, at start: an import failure is a config error), the `Hooks` stage, and the usage
sink that gives finished records to the `on_record` hooks off the hot path."""

from __future__ import annotations

from dataclasses import dataclass

from ai_gateway.hooks.functions import HttpClient, LoadError, build_function
from ai_gateway.hooks.records import RecordHooks
from ai_gateway.hooks.runner import Hook, HookMetrics, HookSet
from ai_gateway.observability.metrics import Metrics
from ai_gateway.pipeline.hooks import Hooks
from ai_gateway.settings import Config, ConfigError
from ai_gateway.usage.recorder import UsageSink


@dataclass(frozen=True)
class HookParts:
    stage: Hooks
    records: RecordHooks | None  # None: no on_record hook
    client: HttpClient

    def sink(self, inner: UsageSink | None) -> UsageSink | None:
        """The usage recorder's sink: `inner`, and the on_record hooks when there are any."""
        if self.records is None:
            return inner
        self.records.attach(inner)
        return self.records

    async def start(self) -> None:
        if self.records is not None:
            await self.records.start()

    async def aclose(self) -> None:
        if self.records is not None:
            await self.records.aclose()
        await self.client.aclose()


def build_hooks(config: Config, metrics: Metrics) -> HookParts:
    client = HttpClient()
    hook_metrics = HookMetrics(metrics) if config.hooks else None
    hooks: list[Hook] = []
    for hook in config.hooks:
        try:
            function = build_function(hook, client)
        except LoadError as exc:
            raise ConfigError(f"{config.source}: hooks: {hook.name}: {exc}") from None
        assert hook_metrics is not None
        hooks.append(Hook(hook, function, hook_metrics))
    on_record = [h for h in hooks if h.point == "on_record"]
    records = (
        RecordHooks(on_record, hook_metrics) if on_record and hook_metrics is not None else None
    )
    return HookParts(Hooks(HookSet(hooks)), records, client)
