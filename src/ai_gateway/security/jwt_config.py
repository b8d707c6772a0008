"""`security.jwt` in the config file: how to verify the Auth service's tokens. Part of the
config file's schema (the settings layer); `jwt_auth.JWTVerifier` does the verifying."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "PS256"})
_MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 section 3.2


class JWTSettings(BaseModel):
    """How to verify the Auth service's tokens. Give `secret` (HS256), `jwks_url` (RS256/ES256)
    or both; `algorithms` defaults to what those make possible."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    secret: SecretStr | None = None
    jwks_url: str | None = None
    algorithms: tuple[str, ...] | None = Field(default=None, validate_default=True)
    issuer: str | None = Field(default=None, min_length=1)
    audience: str | None = Field(default=None, min_length=1)  # unset: tokens with `aud` fail
    user_claim: str = Field(default="sub", min_length=1)
    team_claim: str | None = Field(default=None, min_length=1)
    leeway_s: float = Field(default=30, ge=0, le=600)
    jwks_cache_s: float = Field(default=300, ge=10)
    require_exp: bool = True
    cache_ttl_s: float = Field(default=60, ge=0)  # 0: every request verifies its token again
    cache_max_entries: int = Field(default=4096, ge=1)

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("jwks_url must be an http:// or https:// URL")
        return value

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...]:
        if value is None:
            default: list[str] = []
            if info.data.get("secret") is not None:
                default.append("HS256")
            if info.data.get("jwks_url") is not None:
                default += ["RS256", "ES256"]
            return tuple(default)
        if not value:
            raise ValueError("algorithms must name at least one algorithm")
        for name in value:
            if name.lower() == "none":
                raise ValueError("the algorithm 'none' (unsigned tokens) is never accepted")
            if name not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS:
                known = ", ".join(sorted(HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS))
                raise ValueError(f"unsupported algorithm {name!r}; choose from {known}")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _keys_for_algorithms(self) -> JWTSettings:
        if self.secret is None and self.jwks_url is None:
            raise ValueError("set secret (for HS256) or jwks_url (for RS256/ES256)")
        algorithms = self.algorithms or ()
        hmac = [a for a in algorithms if a in HMAC_ALGORITHMS]
        asymmetric = [a for a in algorithms if a in ASYMMETRIC_ALGORITHMS]
        if hmac and self.secret is None:
            raise ValueError(f"algorithms {', '.join(hmac)} need a secret")
        if asymmetric and self.jwks_url is None:
            raise ValueError(f"algorithms {', '.join(asymmetric)} need a jwks_url")
        if self.secret is not None and not hmac:
            raise ValueError("a secret is set but algorithms name no HS* algorithm")
        if self.jwks_url is not None and not asymmetric:
            raise ValueError("a jwks_url is set but algorithms name no RS*/ES*/PS* algorithm")
        if self.secret is not None:
            size = len(self.secret.get_secret_value().encode())
            strongest = max(hmac, key=_MIN_SECRET_BYTES.__getitem__)
            if size < _MIN_SECRET_BYTES[strongest]:
                raise ValueError(
                    f"the secret is {size} bytes long; {strongest} needs at least "
                    f"{_MIN_SECRET_BYTES[strongest]} (RFC 7518 section 3.2)"
                )
        return self
