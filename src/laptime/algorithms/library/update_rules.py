"""Update rules from the literature (filled in as they are added)."""

from __future__ import annotations

from laptime.api import Algorithm


def update_rule_algorithms() -> list[Algorithm]:
    return []
