"""Inference adapters: OpenAI-compatible upstreams and the embedded llama.cpp model."""
