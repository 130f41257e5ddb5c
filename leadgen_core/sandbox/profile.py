"""How hard the sandbox is: the `demo` profile stays quick, `realistic` follows the vendors' docs.

Every simulator receives one `SandboxProfile`. In the `demo` profile the simulators behave as
they always have (small pages, fast answers, only the limits a test sets through `FaultConfig`).
In the `realistic` profile each simulator applies its vendor's documented limits, latencies and
payload sizes; the numbers live in the simulator's own module, each beside its source.

`time_scale` K runs the same night K times faster: every documented latency is divided by K and
every documented rate limit (per second, minute, hour, day) is multiplied by K, so benchmarks can
report unscaled seconds as measured seconds × K.

    profile = SandboxProfile.from_env()            # LEADGEN_SANDBOX_PROFILE, LEADGEN_SANDBOX_TIME_SCALE
    sim_sleep = profile.latency(2.5)               # seconds to sleep for a documented 2.5 s
    per_minute = profile.rate(5)                   # a documented 5/min becomes 5·K/min
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum

PROFILE_ENV = "LEADGEN_SANDBOX_PROFILE"
TIME_SCALE_ENV = "LEADGEN_SANDBOX_TIME_SCALE"


class ProfileName(StrEnum):
    DEMO = "demo"
    REALISTIC = "realistic"


@dataclass(frozen=True)
class SandboxProfile:
    """The sandbox's difficulty and speed-up, shared by every simulator of one cluster."""

    name: ProfileName = ProfileName.DEMO
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if not (self.time_scale > 0 and self.time_scale <= 1000):
            raise ValueError(f"time scale must be in (0, 1000], got {self.time_scale!r}")

    @property
    def realistic(self) -> bool:
        return self.name is ProfileName.REALISTIC

    def latency(self, seconds: float) -> float:
        """A documented latency, shortened by the time scale."""
        return seconds / self.time_scale

    def rate(self, per_period: float) -> float:
        """A documented rate limit (requests, tokens or credits per period), raised by the time scale."""
        return per_period * self.time_scale

    def period(self, seconds: float) -> float:
        """A documented window or block length (a 10-minute block, say), shortened by the time scale."""
        return seconds / self.time_scale

    @classmethod
    def parse(cls, name: str, time_scale: float = 1.0) -> SandboxProfile:
        try:
            profile_name = ProfileName(name.strip().lower())
        except ValueError:
            choices = ", ".join(p.value for p in ProfileName)
            raise ValueError(f"unknown sandbox profile {name!r}; expected one of {choices}") from None
        return cls(name=profile_name, time_scale=time_scale)

    @classmethod
    def from_env(cls) -> SandboxProfile:
        raw_scale = os.environ.get(TIME_SCALE_ENV, "1") or "1"
        try:
            scale = float(raw_scale)
        except ValueError:
            raise ValueError(f"{TIME_SCALE_ENV} must be a number, got {raw_scale!r}") from None
        return cls.parse(os.environ.get(PROFILE_ENV, ProfileName.DEMO.value) or ProfileName.DEMO.value, scale)

    def env(self) -> dict[str, str]:
        return {PROFILE_ENV: self.name.value, TIME_SCALE_ENV: repr(self.time_scale)}


DEMO = SandboxProfile()
