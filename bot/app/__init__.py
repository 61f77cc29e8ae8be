"""The composition root: settings, services, the app factory, the CLI and the demo."""
