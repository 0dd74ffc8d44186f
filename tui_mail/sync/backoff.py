"""Reconnect policy: exponential (1.8^n, as aerc does) with a cap and jitter."""

from __future__ import annotations

import random

from msgspec import Struct

# Shared: a per-policy generator would only add state to every Backoff's repr.
_rng = random.Random()


class Backoff(Struct):
    base: float = 2.0
    factor: float = 1.8
    cap: float = 300.0
    jitter: float = 0.1
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * self.factor**self.attempts)
        self.attempts += 1
        # Jitter keeps many clients from reconnecting in lockstep after an outage.
        return delay * (1 + self.jitter * (2 * _rng.random() - 1))

    def reset(self) -> None:
        self.attempts = 0
