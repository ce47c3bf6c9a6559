"""Rate limits and managed keys: in-process and file adapters (the embedded default) and
Redis adapters (shared by every gateway instance)."""
