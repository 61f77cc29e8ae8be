"""People in Slack, looked up by email (users.lookupByEmail)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.org import SlackUser


class SlackDirectory:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def lookup(self, email: str) -> SlackUser | None:
        try:
            user = self.client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise
        name = user.get("real_name") or (user.get("profile") or {}).get("real_name")
        return SlackUser(slack_id=user["id"], name=name, timezone=user.get("tz"))
