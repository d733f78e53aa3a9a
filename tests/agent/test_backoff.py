"""RestartPolicy: Service Fabric's restart backoff and health thresholds, as pure arithmetic."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fabrichost.agent._backoff import HealthState, RestartPolicy

NO_JITTER_SF = RestartPolicy(base_delay=10.0, max_delay=3600.0, max_jitter=0.0, reset_after=300.0)


def test_sf_defaults_are_10s_3600s_4s_jitter_300s_reset() -> None:
    sf = RestartPolicy.service_fabric()
    assert (sf.base_delay, sf.max_delay, sf.max_jitter, sf.reset_after) == (10, 3600, 4, 300)
    assert (sf.exponentiation_base, sf.warning_threshold, sf.error_threshold) == (1.5, 1, 3)


def test_dev_defaults_are_short() -> None:
    dev = RestartPolicy()
    assert (dev.base_delay, dev.max_delay, dev.max_jitter, dev.reset_after) == (0.5, 30, 0.25, 30)


def test_delay_is_base_times_int_of_1_5_to_the_failures() -> None:
    rng = random.Random(1)
    delays = [NO_JITTER_SF.delay(n, rng) for n in range(1, 8)]
    # int(1.5 ** n) for n = 1..7 is 1, 2, 3, 5, 7, 11, 17 (SF truncates the power, not the product)
    assert delays == [10, 20, 30, 50, 70, 110, 170]


def test_no_failures_means_no_delay() -> None:
    assert RestartPolicy().delay(0, random.Random()) == 0


def test_delay_is_capped_at_max_delay() -> None:
    assert NO_JITTER_SF.delay(30, random.Random()) == 3600


def test_huge_failure_counts_do_not_overflow() -> None:
    assert NO_JITTER_SF.delay(10**6, random.Random()) == 3600


def test_zero_base_delay_turns_backoff_and_jitter_off() -> None:
    policy = RestartPolicy(base_delay=0.0, max_jitter=5.0)
    assert all(policy.delay(n, random.Random(n)) == 0 for n in range(50))


def test_exponentiation_base_zero_is_constant() -> None:
    policy = RestartPolicy(base_delay=2.0, max_jitter=0.0, exponentiation_base=0.0)
    assert [policy.delay(n, random.Random()) for n in (1, 2, 5, 40)] == [2, 2, 2, 2]


@given(failures=st.integers(min_value=1, max_value=5000), seed=st.integers(0, 2**32))
def test_jitter_stays_within_max_jitter(failures: int, seed: int) -> None:
    policy = RestartPolicy(base_delay=0.5, max_delay=30.0, max_jitter=0.25)
    without = RestartPolicy(base_delay=0.5, max_delay=30.0, max_jitter=0.0)
    delay = policy.delay(failures, random.Random(seed))
    base = without.delay(failures, random.Random(seed))
    assert base <= delay <= base + 0.25


@given(
    base=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=10_000.0),
    failures=st.integers(min_value=0, max_value=3000),
)
def test_delay_never_decreases_with_more_failures_and_respects_the_cap(
    base: float, cap: float, failures: int
) -> None:
    policy = RestartPolicy(base_delay=base, max_delay=cap, max_jitter=0.0)
    rng = random.Random(0)
    now, later = policy.delay(failures, rng), policy.delay(failures + 1, rng)
    assert now <= later <= cap


@pytest.mark.parametrize(
    ("failures", "state"),
    [
        (0, HealthState.OK),
        (1, HealthState.WARNING),
        (2, HealthState.WARNING),
        (3, HealthState.ERROR),
        (50, HealthState.ERROR),
    ],
)
def test_health_follows_sf_thresholds(failures: int, state: HealthState) -> None:
    assert RestartPolicy().health(failures) is state


def test_health_states_use_sf_spelling() -> None:
    assert [s.value for s in HealthState] == ["Ok", "Warning", "Error"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": -1.0},
        {"max_delay": math.nan},
        {"max_jitter": math.inf},
        {"reset_after": -0.1},
        {"warning_threshold": 4, "error_threshold": 3},
        {"warning_threshold": -1},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RestartPolicy"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]
