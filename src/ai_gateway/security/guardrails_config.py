"""Guardrail configuration: rules, policies and the built-in `default-pii` policy. Part of the
config file's schema (the settings layer); `guardrails.build_detector` builds a rule's detector.

A rule names one detector, one action and the direction(s) it applies to:

- `block`: the request (input) or the response (output) is refused; the lead's pipeline answers
  with `GuardrailBlockedError` (the matched text is never repeated);
- `redact`: each match is replaced by `[REDACTED:<detector>]`;
- `flag`: nothing changes; a `Finding` records it (for audit, metrics, alerts).

The built-in policy `default-pii` (`default_policy()`), chosen for a developer-facing assistant:

- emails, phone numbers, payment cards, IBANs: `redact`, both directions;
- secrets (API keys, tokens, JWTs, private keys): `redact`, both directions. Not `block`: people
  paste a config with a key in it and ask why it fails; redacting keeps the key away from the
  provider (and its logs) and still answers the question;
- prompt injection: `flag`, input only, in `user` and `tool` messages (a system prompt written by
  the operator legitimately says "ignore ..."); a false block would cost more than a flag.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ai_gateway.security.patterns import PatternError, compile_linear

DetectorKind = Literal[
    "email", "phone", "card", "iban", "secret", "deny_list", "regex", "prompt_injection"
]
DEFAULT_INJECTION_THRESHOLD = 1.0  # the prompt-injection score that triggers (security.injection)
Action = Literal["block", "redact", "flag"]
Direction = Literal["input", "output"]
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
DEFAULT_POLICY_NAME = "default-pii"


class GuardrailRule(BaseModel):
    """One detector, one action. `words` is for `deny_list` (whole words or phrases), `patterns`
    for `regex`; both are case-insensitive unless `case_sensitive`. `threshold` is for
    `prompt_injection` (default 1.0, see `security.injection`). `roles` limits an input rule to
    messages of those roles (empty: all roles); output rules ignore it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    detector: DetectorKind
    action: Action
    on: Literal["input", "output", "both"] = "both"
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    case_sensitive: bool = False
    threshold: float | None = Field(default=None, gt=0)
    roles: tuple[Role, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 (PyYAML) reads an unquoted `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        where = f"guardrail rule {self.name!r}"
        if self.detector == "deny_list":
            if not any(w.strip() for w in self.words):
                raise ValueError(f"{where}: a deny_list rule needs `words` (non-empty strings)")
        elif self.words:
            raise ValueError(f"{where}: `words` is only for the deny_list detector")
        if self.detector == "regex":
            if not self.patterns:
                raise ValueError(f"{where}: a regex rule needs `patterns`")
            for i, pattern in enumerate(self.patterns):
                try:
                    compile_linear(pattern, self.case_sensitive)
                except PatternError as exc:
                    raise ValueError(
                        f"{where}: patterns[{i}] is not a valid regular expression ({exc})"
                    ) from None
        elif self.patterns:
            raise ValueError(f"{where}: `patterns` is only for the regex detector")
        if self.detector == "prompt_injection":
            if self.action == "redact":
                raise ValueError(
                    f"{where}: prompt_injection can only block or flag (a phrase is not a secret"
                    " to hide; redacting it would silently change the prompt)"
                )
        elif self.threshold is not None:
            raise ValueError(f"{where}: `threshold` is only for the prompt_injection detector")
        return self

    @property
    def directions(self) -> tuple[Direction, ...]:
        return ("input", "output") if self.on == "both" else (self.on,)

    @property
    def injection_threshold(self) -> float:
        return DEFAULT_INJECTION_THRESHOLD if self.threshold is None else self.threshold

    def detector_key(self) -> tuple[object, ...]:
        """Rules with equal keys share one detector (and one pass over a text)."""
        return (self.detector, self.words, self.patterns, self.case_sensitive)


class GuardrailPolicy(BaseModel):
    """A named, ordered set of rules (API keys refer to policies by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=256)
    rules: tuple[GuardrailRule, ...] = ()

    @model_validator(mode="after")
    def _unique_rule_names(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"guardrail policy {self.name!r}: rule {rule.name!r} repeats")
            seen.add(rule.name)
        return self


def default_policy() -> GuardrailPolicy:
    """The built-in `default-pii` policy (see the module docstring for the choices)."""
    redact = ("email", "phone", "card", "iban", "secret")
    rules = [GuardrailRule(name=f"pii-{kind}", detector=kind, action="redact") for kind in redact]
    rules.append(
        GuardrailRule(
            name="prompt-injection",
            detector="prompt_injection",
            action="flag",
            on="input",
            roles=("user", "tool"),
        )
    )
    return GuardrailPolicy(name=DEFAULT_POLICY_NAME, rules=tuple(rules))
