"""People and channels in Slack: users.lookupByEmail, conversations.list."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.channels import SlackChannel
from bot.org import SlackUser

PATIENCE = 60  # the 429s one call waits out before it gives up


def patient(client: WebClient) -> WebClient:
    """`client`, waiting out Slack's rate limits (`Retry-After`) instead of failing: for the org
    import's lookups, made at start and from the command line, never in a listener."""
    return WebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        retry_handlers=[*client.retry_handlers, RateLimitErrorRetryHandler(max_retry_count=PATIENCE)],
    )


class SlackDirectory:
    def __init__(self, client: WebClient) -> None:
        self.client = patient(client)

    def lookup(self, email: str) -> SlackUser | None:
        try:
            user = self.client.users_lookupByEmail(email=email)["user"]
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise
        name = user.get("real_name") or (user.get("profile") or {}).get("real_name")
        return SlackUser(slack_id=user["id"], name=name, timezone=user.get("tz"))


class SlackChannels:
    """Channels the bot can see (conversations.list, channels:read / groups:read), all pages."""

    def __init__(self, client: WebClient) -> None:
        self.client = patient(client)

    def channels(self) -> list[SlackChannel]:
        found: list[SlackChannel] = []
        cursor = None
        while True:
            page = self.client.conversations_list(
                types="public_channel,private_channel", exclude_archived=False, limit=200, cursor=cursor
            )
            for c in page.get("channels") or []:
                found.append(
                    SlackChannel(
                        id=c["id"],
                        name=c.get("name", ""),
                        is_private=bool(c.get("is_private")),
                        is_member=bool(c.get("is_member")),
                        is_archived=bool(c.get("is_archived")),
                    )
                )
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found
