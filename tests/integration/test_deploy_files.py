"""deploy/: what can be checked without Docker (no image registry is reachable here). nginx
tests the shipped config filled in as compose fills it; the compose file's references (files,
variables, addresses) resolve; the Dockerfile builds from the lock, in stages, as a non-root
user with a health check; the example gateway config is valid."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ai_gateway.app import create_app
from ai_gateway.settings import load_config
from analytics_support import unavailable
from cluster_support import NGINX
from harness import free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
REPO = DEPLOY.parent
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _nginx_env() -> dict[str, str]:
    env: dict[str, str] = _compose()["services"]["nginx"]["environment"]
    return {k: str(v) for k, v in env.items()}


def test_nginx_accepts_the_config_as_compose_fills_it_in(tmp_path: Path) -> None:
    if not Path(NGINX).is_file():
        unavailable(f"nginx is not installed ({NGINX}); scripts/test installs it")
    template = (DEPLOY / "nginx.conf").read_text()
    env = _nginx_env()
    # The image's entrypoint substitutes the variables its environment defines: every
    # placeholder must be one of them, or nginx would read "${...}" literally.
    assert set(PLACEHOLDER.findall(template)) <= set(env)
    # nginx's own variables ($host, $request_id, ...) are lower case: envsubst, given the
    # container's upper-case names, leaves them alone.
    assert not re.findall(r"\$[A-Z]", PLACEHOLDER.sub("", template))
    # Compose's values, except what must differ on this machine: the instances' host names
    # (nginx resolves them when it starts), a port of our own and writable paths.
    values = {
        **env,
        "NGINX_LISTEN": f"127.0.0.1:{free_port()}",
        "GATEWAY_1": f"127.0.0.1:{free_port()}",
        "GATEWAY_2": f"127.0.0.1:{free_port()}",
        "NGINX_RUN_DIR": str(tmp_path),
        "NGINX_ACCESS_LOG": str(tmp_path / "access.log"),
        "NGINX_ERROR_LOG": str(tmp_path / "error.log"),
    }
    assert env["GATEWAY_1"].endswith(":3001")
    assert env["GATEWAY_2"].endswith(":3001")
    conf = PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    (tmp_path / "nginx.conf").write_text(conf)
    done = subprocess.run(
        [NGINX, "-t", "-p", f"{tmp_path}/", "-c", "nginx.conf", "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_the_nginx_config_retries_only_what_cannot_have_reached_an_instance() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    directives = [
        line.split("#", 1)[0].strip()
        for line in conf.splitlines()
        if line.split("#", 1)[0].strip().startswith("proxy_next_upstream ")
    ]
    assert directives == ["proxy_next_upstream error timeout;"]
    assert "proxy_buffering off;" in conf
    assert "proxy_intercept_errors on" not in conf


def test_compose_references_resolve() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"nginx", "gateway-1", "gateway-2", "redis", "postgres", "qdrant"} <= set(services)
    nginx_ip = services["nginx"]["networks"]["backend"]["ipv4_address"]
    for name in ("gateway-1", "gateway-2"):
        service = services[name]
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
        env = service["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["QDRANT_URL"] == "http://qdrant:6333"
        # The instances trust nginx's X-Forwarded-For, and only nginx's.
        assert env["FORWARDED_ALLOW_IPS"] == nginx_ip
        # Longer than nginx's upstream keepalive_timeout: nginx closes idle connections first.
        assert int(env["AI_GATEWAY_KEEP_ALIVE_TIMEOUT_S"]) > 60
        assert service["healthcheck"]["test"][-1].count("/health/ready") == 1
        # Longer than the gateway's graceful shutdown (30 s).
        assert int(service["stop_grace_period"].rstrip("s")) > 30
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
            else:
                assert source in compose["volumes"], volume
    # Every variable compose reads from deploy/.env is in the example file.
    text = (DEPLOY / "compose.yaml").read_text()
    wanted = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert wanted <= example, wanted - example


def test_the_dockerfile_builds_from_the_lock_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.MULTILINE)
    assert stages == ["build", "runtime"]
    build, runtime = text.split("AS runtime", 1)
    assert "--require-hashes" in build
    assert "requirements/runtime.txt" in build
    assert "requirements/bootstrap.txt" in build
    # torch's CPU wheel goes where the lock looks for it.
    lock = (REPO / "requirements" / "runtime.txt").read_text()
    assert "--find-links /opt/wheels" in lock
    assert "COPY --from=wheels / /opt/wheels/" in build
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (REPO / path).exists(), path
    users = re.findall(r"^USER (\S+)$", runtime, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in runtime
    assert "/health" in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    assert "src/" not in runtime.split("COPY --from=build", 1)[1]  # no source tree at run time


def test_the_example_gateway_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_URL", "http://qdrant:6333")
    config = load_config(DEPLOY / "gateway.yaml")
    create_app(config)  # validates everything, as `ai-gateway check-config` does
    assert config.security.rate_limits.user is not None
