"""When to restart a failing code package, and how healthy it is: pure arithmetic, no IO.

Use :class:`RestartPolicy` to decide how long to wait before the next activation of a code package
that keeps failing, and which health state its continuous-failure count maps to::

    policy = RestartPolicy()                         # short dev defaults
    sf = RestartPolicy.service_fabric()              # Service Fabric's production values
    wait = policy.delay(continuous_failures=3, rng=random.Random())
    state = policy.health(continuous_failures=3)     # HealthState.ERROR

The formula is Service Fabric's ``CodePackage::GetDueTime`` (6.4, ``CodePackage.cpp:1269-1325``)::

    failures == 0  ->  0
    otherwise      ->  min(base * int(exponentiation_base ** failures), max) + jitter

where SF's jitter is ``random.Next(5)`` whole seconds (0-4 s); here it is ``uniform(0, max_jitter)``
so dev clusters can use sub-second values. SF's settings are ``ActivationRetryBackoffInterval``
(10 s), ``ActivationMaxRetryInterval`` (3600 s), ``ActivationRetryBackoffExponentiationBase``
(1.5), ``CodePackageContinuousExitFailureResetInterval`` (300 s) and
``CodePackageHealthWarningThreshold`` / ``ErrorThreshold`` (1 / 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

# One spelling of health in the whole agent: the protocol's (SF's REST values).
from fabrichost.protocol import HealthState

if TYPE_CHECKING:
    import random

__all__ = ("HealthState", "RestartPolicy")


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a code package is restarted after failures, and how its health is judged.

    All durations are seconds. The defaults are short, for a dev machine; use
    :meth:`service_fabric` for the production values. A ``base_delay`` of 0 turns backoff off
    entirely (no jitter either), which tests and benchmarks use.

    Attributes:
        base_delay: the first retry delay (SF ``ActivationRetryBackoffInterval``, 10 s).
        max_delay: cap on the exponential part (SF ``ActivationMaxRetryInterval``, 3600 s).
        max_jitter: a uniform random 0..max_jitter is added so failing packages spread out
            (SF: 0-4 whole seconds).
        reset_after: how long the main entry point must run without exiting before its
            continuous-failure count goes back to 0 (SF
            ``CodePackageContinuousExitFailureResetInterval``, 300 s).
        exponentiation_base: growth per failure (SF 1.5). ``int(base ** failures)`` is used, as
            SF does, so with 1.5 the multipliers are 1, 2, 3, 5, 7, 11, ...; 0 means a constant
            ``base_delay`` (SF's documented "constant" mode).
        warning_threshold: continuous failures at which health becomes Warning (SF 1).
        error_threshold: continuous failures at which health becomes Error (SF 3).
    """

    base_delay: float = 0.5
    max_delay: float = 30.0
    max_jitter: float = 0.25
    reset_after: float = 30.0
    exponentiation_base: float = 1.5
    warning_threshold: int = 1
    error_threshold: int = 3

    def __post_init__(self) -> None:
        numbers = {
            "base_delay": self.base_delay,
            "max_delay": self.max_delay,
            "max_jitter": self.max_jitter,
            "reset_after": self.reset_after,
            "exponentiation_base": self.exponentiation_base,
        }
        for name, value in numbers.items():
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"RestartPolicy.{name} must be a finite number >= 0, not {value}")
        if not 0 <= self.warning_threshold <= self.error_threshold:
            raise ValueError(
                "RestartPolicy needs 0 <= warning_threshold <= error_threshold, got "
                f"{self.warning_threshold} and {self.error_threshold}"
            )

    @classmethod
    def service_fabric(cls) -> RestartPolicy:
        """Service Fabric 6.4's ``[Hosting]`` defaults (10 s, 3600 s, 0-4 s jitter, 300 s reset)."""
        return cls(base_delay=10.0, max_delay=3600.0, max_jitter=4.0, reset_after=300.0)

    def _factor(self, continuous_failures: int) -> float:
        """``int(exponentiation_base ** continuous_failures)`` as SF computes it, inf if huge.

        Strategy: a count that overflows a float (about 1750 failures at base 1.5) only means
        "past the cap", so it becomes inf and ``min(..., max_delay)`` does the rest.
        """
        if self.exponentiation_base == 0:
            return 1.0  # SF's documented "constant" mode: every retry waits base_delay
        try:
            return float(int(self.exponentiation_base**continuous_failures))
        except OverflowError:  # from ** or from int(inf)
            return math.inf

    def delay(self, continuous_failures: int, rng: random.Random) -> float:
        """Seconds to wait before the next activation after ``continuous_failures`` failures.

        Args:
            continuous_failures: ``ContinuousExitFailureCount + ContinuousActivationFailureCount``
                of the entry point about to be started (SF computes the due time per entry point).
            rng: the random source of the jitter (inject a seeded one for reproducible tests).

        Returns:
            0 when there were no failures or ``base_delay`` is 0; otherwise
            ``min(base_delay * multiplier, max_delay) + uniform(0, max_jitter)``.
        """
        if continuous_failures <= 0 or self.base_delay == 0:
            return 0.0
        retry = min(self.base_delay * self._factor(continuous_failures), self.max_delay)
        if self.max_jitter > 0:
            retry += rng.uniform(0.0, self.max_jitter)
        return retry

    def health(self, continuous_failures: int) -> HealthState:
        """The health state SF's Hosting reports for this many continuous failures."""
        if continuous_failures >= self.error_threshold and continuous_failures > 0:
            return HealthState.ERROR
        if continuous_failures >= self.warning_threshold and continuous_failures > 0:
            return HealthState.WARNING
        return HealthState.OK
