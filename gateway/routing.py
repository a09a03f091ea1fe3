"""Failover order: the best priority tier first, shuffled within a tier so equal keys share load."""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway.types import Route


def failover_order(routes: Sequence[Route]) -> list[Route]:
    """Routes arrive sorted by (priority, id); shuffle each run of equal priority."""
    if len(routes) < 2:
        return list(routes)
    ordered: list[Route] = []
    tier: list[Route] = []
    for route in routes:
        if tier and route.priority != tier[0].priority:
            ordered.extend(random.sample(tier, len(tier)) if len(tier) > 1 else tier)
            tier = []
        tier.append(route)
    ordered.extend(random.sample(tier, len(tier)) if len(tier) > 1 else tier)
    return ordered
