"""Secrets never reach a message: every error text that may quote a password, private key,
token or webhook URL passes through `redact` before it is raised, stored or logged.

Connection libraries sometimes echo what they were given (a URL with its password, a key
that failed to parse); this is the one place that masks it, for the warehouse, PostgreSQL,
the Dagster instance check and the alert channels alike.
"""

from __future__ import annotations

from typing import Iterable

MASK = "***"


def redact(text: str, secrets: Iterable[str | None], min_length: int = 1) -> str:
    """`text` with every secret replaced by ***; longest first, so a secret that contains
    another is masked whole. Secrets shorter than `min_length` are left (a channel's
    two-letter fragment would mask ordinary words)."""
    for secret in sorted((s for s in secrets if s and len(s) >= min_length), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
