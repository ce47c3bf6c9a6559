"""The client protocols the gateway speaks besides OpenAI's chat completions,
translated onto them (pure: mappings in, mappings out)."""
