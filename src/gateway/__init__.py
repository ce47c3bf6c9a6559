"""The composition root: settings, the DI container, the app and the CLI."""

__version__ = "0.1.0"
