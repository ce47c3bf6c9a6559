"""Adapters: each fulfils a port with one technology."""
