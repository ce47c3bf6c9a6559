"""Ports: the Protocols the application depends on; adapters fulfil them."""
