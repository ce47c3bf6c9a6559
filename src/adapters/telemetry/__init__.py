"""Telemetry: request metrics and structured logs."""
