"""Roles, ordered: user < power_user < manager < admin. Token scopes are the two lowest roles."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    USER = "user"
    POWER_USER = "power_user"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANKS = {role: rank for rank, role in enumerate(Role)}


class TokenScope(enum.StrEnum):
    USER = "user"
    POWER_USER = "power_user"

    @property
    def role(self) -> Role:
        return Role(self.value)


def lower_of(a: Role, b: Role) -> Role:
    return a if a.rank <= b.rank else b
