"""Settings from the environment; a bad one stops the process with a message that says what to do."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SWEEPS = ("process", "in-process")


class ConfigError(Exception):
    """A missing or malformed setting; exits with code 2."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    slack_bot_token: str
    slack_signing_secret: str
    qa_webhook_secret: str
    slack_app_token: str | None = None
    slack_api_url: str | None = None
    org_file: str | None = None
    host: str = "127.0.0.1"
    port: int = 3000
    sweep_interval: float = 30.0
    sweeps: str = "process"  # "process": serve's sweeper is a child process; "in-process": a thread of serve


def _need(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set: {what}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    database_url = env.get("DATABASE_URL", "").strip() or "sqlite:///coachloop.db"
    try:
        make_url(database_url)
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL {database_url!r} is not a database URL: use e.g. sqlite:///coachloop.db "
            "or postgresql+psycopg://user@host:5432/coachloop"
        ) from None
    token = _need(env, "SLACK_BOT_TOKEN", "set it to the app's Bot User OAuth Token (xoxb-...).")
    if not token.startswith("xoxb-"):
        raise ConfigError(
            "SLACK_BOT_TOKEN must be a bot token starting with xoxb- (OAuth & Permissions page)."
        )
    secret = _need(
        env, "SLACK_SIGNING_SECRET", "copy the Signing Secret from the app's Basic Information page."
    )
    webhook = _need(
        env, "QA_WEBHOOK_SECRET", "set the Standard Webhooks secret (whsec_...) shared with the QA platform."
    )
    if not webhook.startswith("whsec_"):
        raise ConfigError("QA_WEBHOOK_SECRET must be a Standard Webhooks secret starting with whsec_.")
    app_token = env.get("SLACK_APP_TOKEN", "").strip() or None
    if app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp- (for Socket Mode).")
    api_url = env.get("SLACK_API_URL", "").strip() or None
    if api_url:
        parsed = urlparse(api_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(
                f"SLACK_API_URL {api_url!r} must be an http(s) URL such as http://127.0.0.1:8900/api/"
            )
        if not api_url.endswith("/"):
            api_url += "/"
    org = env.get("COACHLOOP_ORG", "").strip() or None
    if org and not os.path.isfile(org):
        raise ConfigError(f"COACHLOOP_ORG points at {org!r}, which is not a file.")
    port_raw = env.get("PORT", "3000").strip() or "3000"
    if not port_raw.isdigit() or not 0 < int(port_raw) < 65536:
        raise ConfigError(f"PORT {port_raw!r} must be a port number from 1 to 65535.")
    interval_raw = env.get("SWEEP_INTERVAL_SECONDS", "").strip() or "30"
    try:
        sweep_interval = float(interval_raw)
    except ValueError:
        sweep_interval = -1.0
    if not 0.5 <= sweep_interval <= 3600:
        raise ConfigError(
            f"SWEEP_INTERVAL_SECONDS {interval_raw!r} must be a number of seconds from 0.5 to 3600."
        )
    sweeps = env.get("SWEEPS", "").strip() or "process"
    if sweeps not in SWEEPS:
        raise ConfigError(
            f"SWEEPS {sweeps!r} must be 'process' (the sweeps in a process of their own beside the web "
            "server, the default) or 'in-process' (one process: less memory, slower under load)."
        )
    return Settings(
        database_url=database_url,
        slack_bot_token=token,
        slack_signing_secret=secret,
        qa_webhook_secret=webhook,
        slack_app_token=app_token,
        slack_api_url=api_url,
        org_file=org,
        host=env.get("HOST", "").strip() or "127.0.0.1",
        port=int(port_raw),
        sweep_interval=sweep_interval,
        sweeps=sweeps,
    )
