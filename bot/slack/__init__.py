"""Slack rendering: Block Kit messages, modals and Home views built from the domain."""
