"""`coachloop connect zendesk-qa --check`: prove the settings with one call and say what was found."""

from __future__ import annotations

from bot.app.config import ConfigError
from bot.app.zendesk_qa_settings import zendesk_qa_connection
from connectors.zendesk_qa import ExportApiError, ZendeskQAClient


def check_zendesk_qa(org_file: str | None) -> int:
    connection = zendesk_qa_connection(org_file)
    if connection is None:
        raise ConfigError(
            "no zendesk_qa section in the org file (give --org FILE or set COACHLOOP_ORG); "
            "see the README, 'Zendesk QA'."
        )
    client = ZendeskQAClient(connection.base_url, connection.token, retries=0)
    print(f"Zendesk QA at {connection.base_url}")
    try:
        found = {str(w.get("id")): str(w.get("name") or "") for w in client.workspaces()}
    except ExportApiError as exc:
        print(f"  the check failed: {exc}")
        return 1
    print(f"  the token works; it can read {len(found)} workspace(s):")
    for wid, name in sorted(found.items()):
        print(f"    {wid}  {name}{'  (polled)' if wid in connection.workspaces else ''}")
    missing = [w for w in connection.workspaces if w not in found]
    for w in missing:
        print(f"  workspace {w} from the org file is not among them: check the id (Settings > Workspaces)")
    if not missing:
        print(
            f"  polling {len(connection.workspaces)} workspace(s) every {connection.poll_every_minutes} "
            f"min, reading {connection.overlap_minutes} min back each time"
        )
    return 1 if missing else 0
