"""Zendesk QA settings: the token from the environment, the rest from the org file's `zendesk_qa:`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from bot.app.config import ConfigError
from bot.org import OrgFileError, parse_org
from connectors.zendesk_qa import ZendeskQAConnection


def zendesk_qa_connection(
    org_file: str | None, env: Mapping[str, str] | None = None
) -> ZendeskQAConnection | None:
    """The connection the org file asks for, or None when it has no `zendesk_qa:` section."""
    env = os.environ if env is None else env
    if not org_file:
        return None
    try:
        with open(org_file, encoding="utf-8") as fh:
            spec = parse_org(fh.read(), org_file)
    except OSError as exc:
        raise ConfigError(f"cannot read the org file {org_file}: {exc.strerror}") from None
    except OrgFileError as exc:
        raise ConfigError(f"the org file has problems:\n{exc}") from None
    if spec.zendesk_qa is None:
        return None
    token = env.get("ZENDESK_QA_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "ZENDESK_QA_TOKEN is not set: the org file has a zendesk_qa section; create an API token "
            "in Zendesk QA (Settings > Connections > API) and export it."
        )
    base = env.get("ZENDESK_QA_API_URL", "").strip() or spec.zendesk_qa.base_url
    parsed = urlparse(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(
            f"ZENDESK_QA_API_URL {base!r} must be an http(s) URL such as https://acme.zendesk.com/qa"
        )
    z = spec.zendesk_qa
    return ZendeskQAConnection(
        base_url=base.rstrip("/"),
        token=token,
        workspaces=z.workspaces,
        poll_every_minutes=z.poll_every_minutes,
        overlap_minutes=z.overlap_minutes,
        first_poll_days_back=z.first_poll_days_back,
    )
