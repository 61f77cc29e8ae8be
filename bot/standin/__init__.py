"""A local stand-in for Slack: its Web API (server), its users' clicks (client), its screen (render)."""
