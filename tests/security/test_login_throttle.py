"""The console's login throttle holds under bursts, on every backend: at most
LOGIN_FAILURES_ALLOWED attempts per reviewer name and per client address are judged
(their password verified) in LOGIN_WINDOW, however many arrive at once; the others
answer 429 with Retry-After at once, without hashing.

Through the login form (httpx on the app over ASGI, concurrent requests) and through
the service function directly (concurrent tasks; on PostgreSQL each transaction takes
a connection of its own from the pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest

from agent_runtime.errors import TooManyRequestsError, UnauthorizedError
from agent_runtime.services import reviewers
from agent_runtime.services.reviewers import (
    LOGIN_FAILURES_ALLOWED,
    LOGIN_WINDOW,
    add_reviewer,
    authenticate,
)
from models import LoginFailure
from tests.console.http import PASSWORD, REVIEWER, SESSION_COOKIE, Agent, Console, open_console
from tests.console.http import csrf_token as csrf_of

BURST = 60
WRONG = "not the password at all"
ALLOWED = LOGIN_FAILURES_ALLOWED


@pytest.fixture
async def web(backend) -> AsyncIterator[Console]:
    async with open_console(backend) as console:
        yield console


class Verifications:
    """Counts the password verifications (the argon2 work) that logins ask for."""

    def __init__(self) -> None:
        self.calls = 0


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    counter = Verifications()
    real = reviewers._verify

    async def counting(password_hash: str, password: str) -> bool:
        counter.calls += 1
        return await real(password_hash, password)

    monkeypatch.setattr(reviewers, "_verify", counting)
    return counter


async def ready_to_post(agent: Agent) -> str:
    """Open the login page (sets the form's CSRF cookie); the form's token."""
    return csrf_of(await agent.login_form())


async def burst(web: Console, attempts: list[tuple[str, str, str]]) -> list[httpx.Response]:
    """Send every login `(address, name, password)` at once, each from a user agent of
    its own that has opened the login page first; the answers in the same order."""
    agents = [web.agent(address) for address, _, _ in attempts]
    tokens = [await ready_to_post(agent) for agent in agents]
    posts = [
        agent.post("/console/login", {"csrf_token": token, "username": name, "password": pw})
        for agent, token, (_, name, pw) in zip(agents, tokens, attempts, strict=True)
    ]
    return list(await asyncio.gather(*posts))


def statuses(answers: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status_code] = counts.get(answer.status_code, 0) + 1
    return counts


def assert_throttled(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.status_code
    assert 0 < int(answer.headers["retry-after"]) <= LOGIN_WINDOW.total_seconds() + 1
    assert "Too many failed logins" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


# --- through the login form --------------------------------------------------------------


async def test_a_burst_of_wrong_passwords_for_one_name_is_judged_five_times(web, verified):
    await web.add_reviewer()
    # Each from an address of its own: the name's budget is what holds.
    attempts = [(f"198.51.100.{n}", REVIEWER, WRONG) for n in range(BURST)]

    answers = await burst(web, attempts)

    assert statuses(answers) == {401: ALLOWED, 429: BURST - ALLOWED}
    assert verified.calls == ALLOWED  # the 429s did no argon2 work
    for answer in answers:
        if answer.status_code == 429:
            assert_throttled(answer)
    # Within the window the right password is refused too, from anywhere.
    right = await web.agent("198.51.100.200").login(REVIEWER, PASSWORD)
    assert_throttled(right)
    assert verified.calls == ALLOWED


async def test_a_burst_from_one_address_is_judged_five_times_whatever_the_names(web, verified):
    await web.add_reviewer()
    attempts = [("203.0.113.9", f"guess-{n}", WRONG) for n in range(BURST)]

    answers = await burst(web, attempts)

    assert statuses(answers) == {401: ALLOWED, 429: BURST - ALLOWED}
    assert verified.calls == ALLOWED
    assert_throttled(await web.agent("203.0.113.9").login(REVIEWER, PASSWORD))
    # Another address, the same reviewer: not held up.
    assert (await web.agent("203.0.113.10").login(REVIEWER, PASSWORD)).status_code == 303


async def test_the_right_password_in_a_burst_gets_in_only_as_one_of_the_five_judged(web, verified):
    await web.add_reviewer()
    attempts = [(f"198.51.100.{n}", REVIEWER, WRONG) for n in range(BURST - 1)]
    attempts.append(("198.51.100.250", REVIEWER, PASSWORD))  # sent last

    answers = await burst(web, attempts)

    right = answers[-1]
    counts = statuses(answers)
    judged = counts.get(401, 0) + counts.get(303, 0)
    assert judged == ALLOWED, counts
    assert verified.calls == ALLOWED
    if right.status_code == 303:  # it was reserved among the first five
        assert counts[401] == ALLOWED - 1
    else:  # never after five judged failures
        assert counts[401] == ALLOWED
        assert_throttled(right)
        assert_throttled(await web.agent("198.51.100.251").login(REVIEWER, PASSWORD))


async def test_case_variants_of_a_name_share_one_budget(web, verified):
    await web.add_reviewer()
    variants = [
        REVIEWER.upper(),
        f" {REVIEWER}",
        REVIEWER.title(),
        f"{REVIEWER}\t",
        "\uff23\uff21\uff32\uff2f\uff2c",
    ]
    attempts = [(f"198.51.100.{n}", variants[n % len(variants)], WRONG) for n in range(BURST)]

    answers = await burst(web, attempts)

    assert statuses(answers) == {401: ALLOWED, 429: BURST - ALLOWED}
    assert_throttled(await web.agent("198.51.100.200").login(REVIEWER, PASSWORD))


async def test_a_throttled_answer_does_not_verify_the_password(web, verified):
    await web.add_reviewer()
    for n in range(ALLOWED):
        assert (await web.agent(f"198.51.100.{n}").login(REVIEWER, WRONG)).status_code == 401
    assert verified.calls == ALLOWED

    for n in range(20):
        assert_throttled(await web.agent(f"198.51.100.{100 + n}").login(REVIEWER, PASSWORD))

    assert verified.calls == ALLOWED


# --- the service function -----------------------------------------------------------------


async def outcome(attempt: Awaitable[str]) -> str:
    try:
        return await attempt
    except UnauthorizedError:
        return "401"
    except TooManyRequestsError as exc:
        assert exc.retry_after > 0
        return "429"


def tally(results: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result] = counts.get(result, 0) + 1
    return counts


async def test_concurrent_attempts_are_counted_and_reserved_atomically(db, verified):
    await add_reviewer(db, "alice", PASSWORD)

    results = await asyncio.gather(
        *(outcome(authenticate(db, "alice", WRONG, address=f"192.0.2.{n}")) for n in range(BURST))
    )

    assert tally(results) == {"401": ALLOWED, "429": BURST - ALLOWED}
    assert verified.calls == ALLOWED
    # One row per judged attempt and scope: a refused attempt reserves nothing.
    assert await LoginFailure.filter(scope="name:alice").using_db(db).count() == ALLOWED
    assert await LoginFailure.all().using_db(db).count() == 2 * ALLOWED
    with pytest.raises(TooManyRequestsError):
        await authenticate(db, "alice", PASSWORD, address="192.0.2.200")


async def test_attempts_being_judged_count_while_in_flight(db, monkeypatch):
    """Five attempts still verifying hold the name's budget: a sixth, even with the
    right password, is refused at once, before any of them has failed."""
    await add_reviewer(db, "alice", PASSWORD)
    release, all_started = asyncio.Event(), asyncio.Event()
    started: list[str] = []
    real = reviewers._verify

    async def slow(password_hash: str, password: str) -> bool:
        started.append(password)
        if len(started) == ALLOWED:
            all_started.set()
        await release.wait()
        return await real(password_hash, password)

    monkeypatch.setattr(reviewers, "_verify", slow)
    in_flight = [
        asyncio.create_task(outcome(authenticate(db, "alice", WRONG, address=f"192.0.2.{n}")))
        for n in range(ALLOWED)
    ]
    await asyncio.wait_for(all_started.wait(), 30)

    with pytest.raises(TooManyRequestsError) as sixth:
        await asyncio.wait_for(authenticate(db, "alice", PASSWORD, address="192.0.2.99"), 10)

    assert len(started) == ALLOWED
    assert 0 < sixth.value.retry_after <= LOGIN_WINDOW.total_seconds() + 1
    release.set()
    assert await asyncio.gather(*in_flight) == ["401"] * ALLOWED


async def test_a_success_releases_its_reservation(db, verified):
    await add_reviewer(db, "alice", PASSWORD)
    for n in range(ALLOWED - 1):
        assert await outcome(authenticate(db, "alice", WRONG, address=f"192.0.2.{n}")) == "401"

    # An honest reviewer's own logins do not use up the budget ...
    for _ in range(3 * ALLOWED):
        assert await authenticate(db, "alice", PASSWORD, address="192.0.2.50") == "alice"

    # ... the failures stay: one more, and the name is throttled.
    assert await LoginFailure.filter(scope="name:alice").using_db(db).count() == ALLOWED - 1
    assert await outcome(authenticate(db, "alice", WRONG, address="192.0.2.60")) == "401"
    assert await outcome(authenticate(db, "alice", PASSWORD, address="192.0.2.61")) == "429"


async def test_concurrent_right_passwords_all_get_in_within_the_budget(db):
    await add_reviewer(db, "alice", PASSWORD)

    results = await asyncio.gather(
        *(
            outcome(authenticate(db, "alice", PASSWORD, address=f"192.0.2.{n}"))
            for n in range(ALLOWED)
        )
    )

    assert results == ["alice"] * ALLOWED
    assert await LoginFailure.all().using_db(db).count() == 0


async def test_throttling_answers_without_waiting_for_the_judged_attempts(db, monkeypatch):
    """A refused attempt neither hashes nor waits for the attempts in flight: it is
    answered while they are all still verifying."""
    await add_reviewer(db, "alice", PASSWORD)
    release, all_stuck = asyncio.Event(), asyncio.Event()
    stuck_count = 0

    async def stuck(password_hash: str, password: str) -> bool:
        nonlocal stuck_count
        stuck_count += 1
        if stuck_count == ALLOWED:
            all_stuck.set()
        await release.wait()
        return False

    monkeypatch.setattr(reviewers, "_verify", stuck)
    judged: list[asyncio.Task[str]] = [
        asyncio.create_task(outcome(authenticate(db, "alice", WRONG, address=f"192.0.2.{n}")))
        for n in range(ALLOWED)
    ]
    await asyncio.wait_for(all_stuck.wait(), 30)

    refused = await asyncio.wait_for(
        asyncio.gather(
            *(
                outcome(authenticate(db, "alice", WRONG, address=f"192.0.2.{100 + n}"))
                for n in range(BURST - ALLOWED)
            )
        ),
        timeout=30,
    )

    assert refused == ["429"] * (BURST - ALLOWED)
    assert not any(task.done() for task in judged)
    release.set()
    assert await asyncio.gather(*judged) == ["401"] * ALLOWED
