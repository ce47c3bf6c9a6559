"""An upstream's reason for refusing a request, made safe to show the client who sent it:
its first line, short, without a traceback, and with whatever looks like a secret, a
file path or an address replaced (an upstream's 500 text is its exception's)."""

from __future__ import annotations

import re

MAX_CHARS = 300
_REDACTIONS = (
    (re.compile(r"(?i)\bbearer\s+\S+"), "Bearer [redacted]"),
    (re.compile(r"(?i)\b(api[_-]?key|token|secret|password|authorization)(\s*[=:]\s*)\S+"),
     r"\1\2[redacted]"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{4,}"), "[redacted]"),
    (re.compile(r"\b[a-z][a-z0-9+.\-]*://\S+", re.I), "[address]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "[address]"),
    (re.compile(r"\blocalhost:\d+\b"), "[address]"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-]+){2,}[\\/]?"), "[path]"),
    # A long run of key-like characters (hex, base64) is a credential or a digest.
    (re.compile(r"\b[A-Za-z0-9+/_\-]{32,}={0,2}"), "[redacted]"),
)  # fmt: skip


# Pydantic's validation error as a Python repr (llama_cpp.server's 500 text): its first
# finding is the reason, said as "<msg> (at `<where>`)".
_PYDANTIC_FINDING = re.compile(r"'loc': \(([^)]*)\), 'msg': (['\"])(.*?)\2")


def _validation_finding(text: str) -> str | None:
    found = _PYDANTIC_FINDING.search(text)
    if found is None:
        return None
    parts = [p.strip().strip("'\"") for p in found.group(1).split(",")]
    where = ".".join(p for p in parts if p and p != "body")
    return f"{found.group(3)} (at `{where}`)" if where else found.group(3)


def client_safe_reason(text: str, fallback: str = "no reason given") -> str:
    text = _validation_finding(text) or text
    text = text.split("Traceback (most recent call last)", 1)[0]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for pattern, replacement in _REDACTIONS:
        line = pattern.sub(replacement, line)
    if len(line) > MAX_CHARS:
        line = line[: MAX_CHARS - 1] + "…"
    return line or fallback
