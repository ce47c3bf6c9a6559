"""What a search filter asks for: user metadata matched exactly, and the fields every
hit shows (``source`` and ``document_id`` exactly, ``created_at`` as a range of dates).
A value of the wrong type is an ``InvalidRequest`` naming it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.errors import InvalidRequest

EXACT_FIELDS = ("source", "document_id")
CREATED_AT = "created_at"
SYSTEM_FIELDS = (*EXACT_FIELDS, CREATED_AT)
BOUNDS = ("gt", "gte", "lt", "lte")


def _instant(bound: str, value: object) -> float:
    """Seconds since the epoch, from a number or an ISO 8601 date or date-time."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    raise InvalidRequest(
        f"filter `{CREATED_AT}.{bound}` must be a date (ISO 8601, e.g. 2026-01-31 or "
        f"2026-01-31T12:00:00Z) or seconds since the epoch, not {value!r}",
        param=f"filter.{CREATED_AT}.{bound}",
    )


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """``metadata``: user metadata → value; ``exact``: system field → value;
    ``created_at``: bound (gt, gte, lt, lte) → seconds since the epoch."""

    metadata: dict[str, str | bool | int | float]
    exact: dict[str, str]
    created_at: dict[str, float]

    @classmethod
    def parse(cls, conditions: Mapping[str, Any]) -> SearchFilter:
        metadata: dict[str, str | bool | int | float] = {}
        exact: dict[str, str] = {}
        created_at: dict[str, float] = {}
        for key, value in conditions.items():
            param = f"filter.{key}"
            if key in EXACT_FIELDS:
                if not isinstance(value, str):
                    raise InvalidRequest(f"filter `{key}` must be a string", param=param)
                exact[key] = value
            elif key == CREATED_AT:
                if not isinstance(value, Mapping) or not value or set(value) - set(BOUNDS):
                    raise InvalidRequest(
                        f"filter `{CREATED_AT}` must be a range such as "
                        '{"gte": "2026-01-01", "lt": "2026-02-01"} (bounds: gt, gte, lt, lte)',
                        param=param,
                    )
                created_at = {bound: _instant(bound, v) for bound, v in value.items()}
            elif isinstance(value, str | bool | int | float):
                metadata[key] = value
            else:
                raise InvalidRequest(
                    f"filter `{key}` must be a string, a number or a boolean", param=param
                )
        return cls(metadata, exact, created_at)

    def admits(self, created_at: float) -> bool:
        """Whether a time falls in the ``created_at`` range."""
        checks = {
            "gt": created_at.__gt__,
            "gte": created_at.__ge__,
            "lt": created_at.__lt__,
            "lte": created_at.__le__,
        }
        return all(checks[bound](limit) for bound, limit in self.created_at.items())
