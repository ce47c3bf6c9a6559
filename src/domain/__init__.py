"""The gateway's domain: pure Python, no framework or driver imports."""
