"""The `hooks:` section of the config file: a list of serverless functions, each run at one point
of the stage chain (docs/hooks.md).

Part of the config file's schema, so in the settings layer: it imports nothing of the code that
acts on it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

HookPoint = Literal["pre_request", "post_response", "on_chunk", "on_record"]
POINTS: tuple[HookPoint, ...] = ("pre_request", "post_response", "on_chunk", "on_record")


class HookConfig(BaseModel):
    """One hook. Exactly one of `python` (`package.module:function`, imported at start) and
    `url` (an HTTP function: a signed POST, `secret` required). `timeout_s`: the most one call
    may take. `inline`: a sync Python function is called on the event loop (it must be quick:
    nothing can cut it off); otherwise a sync function runs in a worker thread. `fail`: what a
    failure (an exception, a timeout, a malformed result) does: `open` goes on as if the hook
    had not run, `closed` fails the request (503 `hook_failed`). `models`: the public model
    names it runs for (empty: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    point: HookPoint
    python: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:function"
    )
    inline: bool = False
    url: str | None = Field(default=None, pattern=r"^https?://")
    secret: SecretStr | None = None
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    fail: Literal["open", "closed"] = "open"
    models: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_kind(self) -> HookConfig:
        if (self.python is None) == (self.url is None):
            raise ValueError(f"hook {self.name!r}: set exactly one of `python` and `url`")
        if self.url is not None and not (self.secret and self.secret.get_secret_value()):
            raise ValueError(f"hook {self.name!r}: an HTTP hook needs a `secret` to sign with")
        if self.url is not None and self.inline:
            raise ValueError(f"hook {self.name!r}: `inline` is for Python functions")
        return self


def _unique_names(hooks: tuple[HookConfig, ...]) -> tuple[HookConfig, ...]:
    seen: set[str] = set()
    for hook in hooks:
        if hook.name in seen:
            raise ValueError(f"hook name {hook.name!r} is listed twice")
        seen.add(hook.name)
    return hooks


HooksConfig = Annotated[tuple[HookConfig, ...], AfterValidator(_unique_names)]
