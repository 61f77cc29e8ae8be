"""Which bot scope each Web API method needs, as Slack's method reference pages list them.

The stand-in answers `missing_scope` when the scopes it was given (by default the bot scopes
of `manifest.yml`) lack what a call needs; a test checks that every method coachloop calls
is covered by the manifest.
"""

from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"

# Method -> the bot scopes of which any one suffices (empty: no scope needed).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "conversations.open": ("im:write", "mpim:write", "channels:manage", "groups:write"),
    "users.info": ("users:read",),
    "users.lookupByEmail": ("users:read.email",),
    "views.open": (),
    "views.push": (),
    "views.update": (),
    "views.publish": (),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
}
# Methods whose scope depends on the kind of conversation: kind -> scope.
HISTORY_SCOPES = {"im": "im:history", "public": "channels:history", "private": "groups:history"}
LIST_SCOPES = {"public_channel": "channels:read", "private_channel": "groups:read", "im": "im:read"}
# chat:write posts only where the bot is a member; with this scope, also to public channels it is not in.
PUBLIC_POST_SCOPE = "chat:write.public"


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes `manifest.yml` asks for."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return frozenset(data["oauth_config"]["scopes"]["bot"])
