"""The pipeline when things go wrong, over real processes: a custodian that answers 500, 503 or
broken documents, refuses for good, fails the revocation, lets tokens die early or loses its
notification; services killed with SIGKILL at the worst moments.

The brief's bar, checked against witnesses the services cannot fake: every authorization ends
revoked (the sandbox's own books) or flagged for the operator (the exporter's `/grants` and
`scwadd_grants_unrevoked`); a crash loses no customer's data (the CSV equals the sandbox's ground
truth) and revokes nothing twice (the sandbox counts every revocation that reaches it).

The stack here is its own (module fixture): retries, leases and the watchdog are set to act in
seconds (`resilience_support.FETCHER_ENV`, `EXPORTER_ENV`); every fault setting is seeded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scwadd_devstack.demo import Consent, give_consent, submit_form
from scwadd_devstack.stack import ExternalCustodian, Stack, StackConfig, StackPorts
from scwadd_sandbox.config import RateLimits
from scwadd_sandbox.faults import EndpointFaults, FaultConfig, FaultInjector, FaultKind
from scwadd_sandbox.state import AuthorizationRecord
from scwadd_sandbox.testing import start_sandbox

from .conftest import System
from .resilience_support import (
    ASYNC_FETCHER_ENV,
    DATA_ENDPOINTS,
    EXPORTER_ENV,
    FETCHER_ENV,
    CustodianWitness,
    Resilient,
    is_human_sentence,
    seed_where,
    wait_for,
)

# Generous for a loaded machine (load average 15-30 on 2 cores): a kill, a restart and a year of
# data made by the in-process sandbox all wait for the same starved CPUs.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

GRANT_SUBJECT = "scwadd.events.grant.received"
FETCH_FAILED_SUBJECT = "scwadd.events.fetch.failed"
TRANSIENT = (FaultKind.ERROR_500, FaultKind.ERROR_503, FaultKind.TRUNCATE, FaultKind.MALFORMED)


@pytest.fixture(scope="module")
def resilient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resilient]:
    run_dir: Path = tmp_path_factory.mktemp("resilience")
    ports = StackPorts.free()
    with start_sandbox(
        run_dir / "pki",
        redirect_uri=f"http://127.0.0.1:{ports.auth}/OAuthCallback",
        notification_uri=f"https://127.0.0.1:{ports.fetcher}/espi/notify",
    ) as sandbox:
        witness = CustodianWitness(sandbox.state)
        witness.install()
        config = StackConfig(
            run_dir=run_dir,
            ports=ports,
            custodian=ExternalCustodian(
                sandbox.web_url, sandbox.api_url, sandbox.client_id, sandbox.client_secret
            ),
            service_env={"fetcher": FETCHER_ENV, "exporter": EXPORTER_ENV},
        )
        with Stack(config) as stack:
            yield Resilient(System(stack, sandbox), witness)


def start_consent(resilient: Resilient, client: httpx.Client, profile: str) -> Consent:
    return give_consent(resilient.system.stack, client, resilient.system.customer_id(profile))


def revoked_once_by_us(
    resilient: Resilient, authorization_id: str, *, second_delete: bool = False
) -> None:
    """The custodian's books: revoked by the third party, by exactly one DELETE that changed
    anything; a later DELETE (``second_delete``: a takeover after a crash) found it done (410)."""
    record = resilient.system.sandbox.state.authorizations[authorization_id]
    assert record.status == "revoked"
    assert record.revoked_by == "third_party"
    calls = resilient.witness.revocations(authorization_id)
    expected = [True, False] if second_delete else [True]
    assert [c.changed for c in calls] == expected, calls


# -- a custodian that answers 500, 503 or nonsense ---------------------------------------------


def consumed_draws(kinds: list[FaultKind], requests: int) -> list[FaultKind]:
    """The draws ``requests`` successive requests use up: each retries until a healthy answer."""
    used: list[FaultKind] = []
    for kind in kinds:
        if requests == 0:
            break
        used.append(kind)
        requests -= kind is FaultKind.NONE
    return used


def transient_faults(seed: int) -> FaultConfig:
    rule = EndpointFaults(
        error_500_rate=0.15, error_503_rate=0.15, truncate_rate=0.15, malformed_rate=0.15
    )
    return FaultConfig(seed=seed, endpoints=dict.fromkeys(DATA_ENDPOINTS, rule))


def test_transient_errors_and_broken_bodies_are_retried_to_the_exact_truth(
    resilient: Resilient,
) -> None:
    # gas-electric: one UsagePoint list and one batch per usage point (two).
    requests = {"UsagePoint": 1, "BatchSubscriptionUsagePoint": 2}

    def every_kind_and_survivable(seed: int) -> bool:
        config = transient_faults(seed)
        used: list[FaultKind] = []
        for endpoint, count in requests.items():
            injector = FaultInjector(config)
            draws = consumed_draws([injector.decide(endpoint).kind for _ in range(40)], count)
            faults = [k for k in draws if k is not FaultKind.NONE]
            # Fewer faults than FETCH_RETRY_ATTEMPTS on an endpoint: no request can exhaust its
            # retries, in whatever order the fetcher interleaves them.
            if len(faults) >= int(FETCHER_ENV["FETCH_RETRY_ATTEMPTS"]):
                return False
            used += faults
        return set(TRANSIENT) <= set(used)

    seed = next(s for s in range(10_000) if every_kind_and_survivable(s))
    known = resilient.authorization_ids()
    errors_before = resilient.responses(500) + resilient.responses(503)
    with resilient.faults(transient_faults(seed)), resilient.system.browser_client() as client:
        consent = start_consent(resilient, client, "gas-electric")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    assert view["revoked"] is True
    record = resilient.new_authorization("gas-electric", known)
    assert record is not None
    # The faults really happened: 5xx answered, and more data calls than a clean run needs.
    assert resilient.responses(500) + resilient.responses(503) > errors_before
    data_calls = sum(resilient.calls(record.authorization_id, e) for e in DATA_ENDPOINTS)
    assert data_calls > sum(requests.values())
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


ALWAYS_FAILING = {
    "errors": EndpointFaults(error_503_rate=0.5, error_500_rate=0.5),
    "broken-bodies": EndpointFaults(malformed_rate=0.5, truncate_rate=0.5),
}


@pytest.mark.parametrize("failure", sorted(ALWAYS_FAILING))
def test_custodian_failing_every_call_fails_the_job_and_still_revokes(
    resilient: Resilient, failure: str
) -> None:
    faults = FaultConfig(seed=1, endpoints=dict.fromkeys(DATA_ENDPOINTS, ALWAYS_FAILING[failure]))
    known = resilient.authorization_ids()
    with resilient.faults(faults), resilient.system.browser_client() as client:
        consent = start_consent(resilient, client, "electric-60min")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "failed", view
    assert view["revoked"] is True, "the customer is told access was revoked"
    record = resilient.new_authorization("electric-60min", known)
    assert record is not None
    # Retried, not hammered: the retry budget, no more.
    attempts = int(FETCHER_ENV["FETCH_RETRY_ATTEMPTS"])
    assert resilient.calls(record.authorization_id, "UsagePoint") == attempts
    assert resilient.exports_of(record.subscription_id) == 0
    revoked_once_by_us(resilient, record.authorization_id)
    grant = resilient.grant_row(record.subscription_id)
    assert grant["status"] == "revoked"
    assert grant["reason"] == "fetch_failed"
    # Last, so a wording defect does not hide the checks above: the page speaks to a person.
    assert is_human_sentence(str(view["message"])), view["message"]


def test_customer_revoking_at_the_custodian_mid_fetch_fails_the_job_cleanly(
    resilient: Resilient,
) -> None:
    # The UsagePoint list is slowed down so the customer's revocation lands mid-fetch: the list
    # is answered (it was asked with a valid token), every data call after it is refused.
    slow = EndpointFaults(latency_ms=1500)
    faults = FaultConfig(endpoints={"UsagePoint": slow})
    known = resilient.authorization_ids()
    with resilient.faults(faults), resilient.system.browser_client() as client:
        consent = start_consent(resilient, client, "gas-electric")
        record = wait_for(
            "the authorization", lambda: resilient.new_authorization("gas-electric", known)
        )
        wait_for(
            "the fetch to start",
            lambda: resilient.calls(record.authorization_id, "UsagePoint") >= 1,
        )
        revoked = resilient.admin.post(
            f"/admin/authorizations/{record.authorization_id}/revoke", json={"by": "customer"}
        )
        revoked.raise_for_status()
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "failed", view
    assert is_human_sentence(str(view["message"])), view["message"]
    assert view["revoked"] is True
    assert record.revoked_by == "customer"
    # The customer's revocation is the only one that changed anything; ours found it done.
    calls = resilient.witness.revocations(record.authorization_id)
    assert [(c.by, c.changed) for c in calls] == [("customer", True), ("third_party", False)]
    grant = resilient.grant_row(record.subscription_id)
    assert grant["status"] == "already_revoked", grant
    assert resilient.exports_of(record.subscription_id) == 0
    assert record.subscription_id not in {g["subscription_id"] for g in resilient.grants("flagged")}


def test_custodian_rate_limit_is_waited_out_without_losing_data(resilient: Resilient) -> None:
    # The custodian allows PG&E's one call per second while this fetcher was configured for
    # twenty (another system sharing the client ID would do the same): the custodian answers
    # 429 with Retry-After, and the fetcher must pause and repeat, not fail or skip a meter.
    known = resilient.authorization_ids()
    throttled_before = resilient.responses(429)
    with resilient.custodian_rate_limits(RateLimits(per_second=1)):
        _consent, view = resilient.system.consent("gas-electric")
    assert view["phase"] == "done", view
    assert resilient.responses(429) > throttled_before, "the custodian did throttle"
    record = resilient.new_authorization("gas-electric", known)
    assert record is not None
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


# -- the revocation itself failing ---------------------------------------------------------------


def test_revocation_failing_transiently_is_retried_and_revokes_once(
    resilient: Resilient,
) -> None:
    def flaky_delete(seed: int) -> FaultConfig:
        rule = EndpointFaults(error_500_rate=0.4, error_503_rate=0.4)
        return FaultConfig(seed=seed, endpoints={"Authorization": rule})

    wanted = [FaultKind.ERROR_500, FaultKind.ERROR_503, FaultKind.NONE]
    faults = seed_where(flaky_delete, "Authorization", wanted)
    known = resilient.authorization_ids()
    deletes_before = resilient.client_calls("Authorization")
    with resilient.faults(faults), resilient.system.browser_client() as client:
        consent = start_consent(resilient, client, "electric-60min")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    record = resilient.new_authorization("electric-60min", known)
    assert record is not None
    # Three DELETEs reached the custodian: 500, 503, then the one that revoked.
    assert resilient.client_calls("Authorization") - deletes_before == len(wanted)
    revoked_once_by_us(resilient, record.authorization_id)
    grant = resilient.grant_row(record.subscription_id)
    assert grant["status"] == "revoked"
    assert grant["revoke_attempts"] == 1, "one claim, its retries inside it"
    # A second DELETE now is refused as already done, and changes nothing.
    sandbox = resilient.system.sandbox
    with sandbox.api_client() as api:
        token = api.post(
            sandbox.token_url, auth=sandbox.basic_auth, data={"grant_type": "client_credentials"}
        ).json()["client_access_token"]
        again = api.delete(
            f"{sandbox.espi_base}/Authorization/{record.authorization_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert again.status_code == 410
    assert [c.changed for c in resilient.witness.revocations(record.authorization_id)] == [
        True,
        False,
    ]


def test_revocation_unreachable_is_flagged_then_retried_until_revoked(
    resilient: Resilient,
) -> None:
    down = FaultConfig(seed=3, endpoints={"Authorization": EndpointFaults(error_500_rate=1.0)})
    known = resilient.authorization_ids()
    with resilient.system.browser_client() as client:
        resilient.set_faults(down)
        try:
            consent = start_consent(resilient, client, "electric-60min")
            view = resilient.wait_job(client, consent)
            record = resilient.new_authorization("electric-60min", known)
            assert record is not None
            # While the custodian cannot be reached, the grant is in front of the operator.
            assert view["phase"] == "failed", view
            assert view["revoked"] is False
            assert is_human_sentence(str(view["message"])), view["message"]
            flagged = wait_for(
                "the grant in /grants?status=flagged",
                lambda: [
                    g
                    for g in resilient.grants("flagged")
                    if g["subscription_id"] == record.subscription_id
                ],
            )
            assert flagged[0]["reason"] == "revocation_unavailable"
            wait_for(
                "scwadd_grants_unrevoked{reason=revocation_unavailable}",
                lambda: resilient.unrevoked_gauge("revocation_unavailable") >= 1,
            )
            assert record.status == "active"
        finally:
            resilient.set_faults({})
        # The custodian is back: the watchdog's next try revokes, once.
        wait_for(
            "the watchdog to revoke the flagged grant",
            lambda: resilient.grant_row(record.subscription_id)["status"] == "revoked",
        )
        revoked_once_by_us(resilient, record.authorization_id)
        assert record.subscription_id not in {
            g["subscription_id"] for g in resilient.grants("flagged")
        }
        wait_for(
            "the unrevoked gauge to clear",
            lambda: resilient.unrevoked_gauge("revocation_unavailable") == 0,
        )
        # And the customer's page says so.
        final = wait_for(
            "the status page to show the revocation",
            lambda: (v := client.get(consent.status_json_url).json())["revoked"] and v,
        )
        assert final["phase"] == "done", final
    resilient.assert_export_equals_truth(record)


# -- tokens and notifications ----------------------------------------------------------------------


def test_access_token_dying_early_is_refreshed_once(resilient: Resilient) -> None:
    stack = resilient.system.stack
    known = resilient.authorization_ids()
    # The fetcher is down while the customer consents, so the token it receives has died by the
    # time it first uses it (the custodian still says expires_in 3600).
    stack.child("fetcher").stop()
    with resilient.system.browser_client() as client:
        with resilient.faults({"token_lifetime_override": 0}):
            consent = start_consent(resilient, client, "electric-60min")
        stack.restart_service("fetcher")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    record = resilient.new_authorization("electric-60min", known)
    assert record is not None
    # The code exchange, then exactly one refresh.
    assert resilient.witness.tokens_issued(record.authorization_id) == 2
    resilient.assert_export_equals_truth(record)
    revoked_once_by_us(resilient, record.authorization_id)


def async_faults(seed: int) -> FaultConfig:
    return FaultConfig(
        seed=seed,
        endpoints={
            "BatchSubscription": EndpointFaults(error_500_rate=0.25, error_503_rate=0.25),
            "BatchBulk": EndpointFaults(
                error_500_rate=0.15, error_503_rate=0.15, truncate_rate=0.15, malformed_rate=0.15
            ),
        },
    )


def batches_of(resilient: Resilient, record: AuthorizationRecord) -> list[dict[str, object]]:
    return [
        b
        for b in resilient.admin.get("/admin/batches").json()
        if b["authorization_id"] == record.authorization_id
    ]


@pytest.fixture(scope="class")
def async_fetcher(resilient: Resilient) -> Iterator[Resilient]:
    """The fetcher asks for the whole subscription at once (202 + BatchList) and waits 3 s."""
    resilient.system.stack.restart_service("fetcher", ASYNC_FETCHER_ENV)
    try:
        yield resilient
    finally:
        resilient.system.stack.restart_service("fetcher")


class TestAsynchronousBatch:
    def test_lost_notification_is_requested_again(self, async_fetcher: Resilient) -> None:
        resilient = async_fetcher
        known = resilient.authorization_ids()
        with resilient.system.browser_client() as client:
            resilient.set_faults({"seed": 5, "notifications": {"lose_rate": 1.0}})
            try:
                consent = start_consent(resilient, client, "electric-60min")
                record = wait_for(
                    "the authorization",
                    lambda: resilient.new_authorization("electric-60min", known),
                )
                wait_for(
                    "a batch whose notification was lost",
                    lambda: any(b["notification"] == "lost" for b in batches_of(resilient, record)),
                )
            finally:
                resilient.set_faults({})
            view = resilient.wait_job(client, consent)
        assert view["phase"] == "done", view
        outcomes = [b["notification"] for b in batches_of(resilient, record)]
        assert outcomes.count("lost") == 1, outcomes
        assert "delivered" in outcomes, outcomes
        resilient.assert_export_equals_truth(record)
        assert resilient.exports_of(record.subscription_id) == 1
        revoked_once_by_us(resilient, record.authorization_id)

    def test_notification_never_coming_fails_the_job_and_revokes(
        self, async_fetcher: Resilient
    ) -> None:
        resilient = async_fetcher
        known = resilient.authorization_ids()
        lost = {"seed": 5, "notifications": {"lose_rate": 1.0}}
        with resilient.faults(lost), resilient.system.browser_client() as client:
            consent = start_consent(resilient, client, "electric-60min")
            view = resilient.wait_job(client, consent)
        assert view["phase"] == "failed", view
        assert is_human_sentence(str(view["message"])), view["message"]
        assert view["revoked"] is True
        record = resilient.new_authorization("electric-60min", known)
        assert record is not None
        # The first request and BATCH_REREQUESTS more, each given up after its timeout.
        outcomes = [b["notification"] for b in batches_of(resilient, record)]
        assert outcomes == ["lost"] * (1 + int(ASYNC_FETCHER_ENV["BATCH_REREQUESTS"])), outcomes
        assert resilient.exports_of(record.subscription_id) == 0
        revoked_once_by_us(resilient, record.authorization_id)

    def test_errors_and_broken_batch_documents_are_retried(self, async_fetcher: Resilient) -> None:
        resilient = async_fetcher
        attempts = int(FETCHER_ENV["FETCH_RETRY_ATTEMPTS"])

        def consumed(config: FaultConfig, endpoint: str) -> list[FaultKind]:
            injector = FaultInjector(config)
            return consumed_draws([injector.decide(endpoint).kind for _ in range(40)], 1)

        def fits(seed: int) -> bool:
            config = async_faults(seed)
            request = [k for k in consumed(config, "BatchSubscription") if k is not FaultKind.NONE]
            bulk = [k for k in consumed(config, "BatchBulk") if k is not FaultKind.NONE]
            broken = {FaultKind.TRUNCATE, FaultKind.MALFORMED}
            return 0 < len(request) < attempts and broken <= set(bulk) and len(bulk) < attempts

        seed = next(s for s in range(10_000) if fits(s))
        known = resilient.authorization_ids()
        # The announced Bulk feed is fetched with the client token (as PG&E requires), so its
        # calls are the third party's, not the customer's authorization's.
        bulk_before = resilient.client_calls("BatchBulk")
        with resilient.faults(async_faults(seed)), resilient.system.browser_client() as client:
            consent = start_consent(resilient, client, "electric-60min")
            view = resilient.wait_job(client, consent)
        assert view["phase"] == "done", view
        record = resilient.new_authorization("electric-60min", known)
        assert record is not None
        assert resilient.client_calls("BatchBulk") - bulk_before > 1, (
            "the broken feed was asked again"
        )
        resilient.assert_export_equals_truth(record)
        assert resilient.exports_of(record.subscription_id) == 1
        revoked_once_by_us(resilient, record.authorization_id)


# -- crashes -------------------------------------------------------------------------------------


def test_fetcher_killed_mid_fetch_after_a_refresh_loses_nothing(resilient: Resilient) -> None:
    stack = resilient.system.stack
    known = resilient.authorization_ids()
    # The customer's first access token is dead on arrival (the fetcher is down while the
    # customer consents), so the fetcher refreshes it first: the custodian rotates the pair and
    # the old refresh token dies. Whoever takes the job over must carry on with the new pair.
    stack.child("fetcher").stop()
    with resilient.system.browser_client() as client:
        with resilient.faults({"token_lifetime_override": 0}):
            consent = start_consent(resilient, client, "multi-site")
        record = wait_for(
            "the authorization", lambda: resilient.new_authorization("multi-site", known)
        )
        # multi-site: four usage points, one batch call each, slowed so the kill lands mid-way.
        slow = FaultConfig(
            endpoints={"BatchSubscriptionUsagePoint": EndpointFaults(latency_ms=1000)}
        )
        with resilient.faults(slow):
            stack.restart_service("fetcher")
            wait_for(
                "two usage points fetched",
                lambda: (
                    resilient.calls(record.authorization_id, "BatchSubscriptionUsagePoint") >= 2
                ),
            )
            resilient.kill("fetcher")
        assert resilient.witness.tokens_issued(record.authorization_id) == 2, "one refresh"
        stack.restart_service("fetcher")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    assert resilient.calls(record.authorization_id, "BatchSubscriptionUsagePoint") > 4, (
        "the new fetcher fetched again"
    )
    # The new owner used the rotated tokens it found in the job ledger: no second refresh.
    assert resilient.witness.tokens_issued(record.authorization_id) == 2
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


def test_nats_killed_mid_fetch_loses_nothing(resilient: Resilient) -> None:
    # The bus itself dies (SIGKILL) while a fetch is storing raw documents and comes back on
    # the same JetStream store: every service reconnects and the job ends as if nothing happened.
    slow = FaultConfig(endpoints={"BatchSubscriptionUsagePoint": EndpointFaults(latency_ms=1000)})
    known = resilient.authorization_ids()
    with resilient.system.browser_client() as client:
        with resilient.faults(slow):
            consent = start_consent(resilient, client, "multi-site")
            record = wait_for(
                "the authorization", lambda: resilient.new_authorization("multi-site", known)
            )
            wait_for(
                "two usage points fetched",
                lambda: (
                    resilient.calls(record.authorization_id, "BatchSubscriptionUsagePoint") >= 2
                ),
            )
            resilient.restart_nats_after_kill()
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


def test_exporter_killed_during_revocation_revokes_once(resilient: Resilient) -> None:
    stack = resilient.system.stack
    # The DELETE is held at the custodian for a while; the exporter dies waiting for the answer,
    # after the custodian has the request: the classic "did it happen?" crash.
    slow_delete = FaultConfig(endpoints={"Authorization": EndpointFaults(latency_ms=5000)})
    known = resilient.authorization_ids()
    deletes_before = resilient.client_calls("Authorization")
    with resilient.system.browser_client() as client:
        with resilient.faults(slow_delete):
            consent = start_consent(resilient, client, "electric-60min")
            wait_for(
                "the DELETE to reach the custodian",
                lambda: resilient.client_calls("Authorization") > deletes_before,
            )
            resilient.kill("exporter")
            record = resilient.new_authorization("electric-60min", known)
            assert record is not None
            wait_for("the custodian to finish the DELETE", lambda: record.status == "revoked")
        stack.restart_service("exporter")
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    assert view["revoked"] is True
    # The new exporter's watchdog took the dead claim over; its DELETE found the work done.
    revoked_once_by_us(resilient, record.authorization_id, second_delete=True)
    grant = resilient.grant_row(record.subscription_id)
    assert grant["status"] == "already_revoked", grant
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1


def test_auth_killed_between_ledger_and_publish_loses_no_grant(resilient: Resilient) -> None:
    stack = resilient.system.stack
    grants_before = resilient.system.subject_counts().get(GRANT_SUBJECT, 0)
    unpublished_before = resilient.unpublished_grants()
    known = resilient.authorization_ids()
    with resilient.system.browser_client() as client:
        landing = client.get(stack.customer_url)
        to_custodian = submit_form(client, stack.customer_url, landing.text)
        consent_url = to_custodian.headers["location"]
        page = client.get(consent_url)
        back = submit_form(
            client,
            consent_url,
            page.text,
            "decision=approve",
            customer=resilient.system.customer_id("electric-60min"),
        )
        callback_url = back.headers["location"]
        answers: list[httpx.Response | Exception] = []

        def callback() -> None:
            try:
                answers.append(client.get(callback_url))
            except httpx.HTTPError as error:
                answers.append(error)

        # NATS frozen: auth exchanges the code and commits its ledger row, then cannot publish.
        with resilient.frozen("nats"):
            browser = threading.Thread(target=callback)
            browser.start()
            wait_for(
                "auth's ledger row",
                lambda: resilient.unpublished_grants() > unpublished_before,
                timeout=60,
            )
            resilient.kill("auth")
            browser.join(30)
        assert answers and isinstance(answers[0], httpx.HTTPError), "the browser saw the crash"
        stack.restart_service("auth")
        # The customer reloads: the same browser with the same code gets its status page.
        replay = client.get(callback_url)
        assert replay.status_code in (302, 303), replay.status_code
        status_id = replay.headers["location"].rstrip("/").rsplit("/", 1)[-1]
        consent = Consent(
            str(httpx.URL(stack.customer_url).join(replay.headers["location"])),
            str(httpx.URL(stack.customer_url).join(f"/api/status/{status_id}")),
        )
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    record = resilient.new_authorization("electric-60min", known)
    assert record is not None
    assert resilient.unpublished_grants() == unpublished_before, "the outbox was emptied"
    assert resilient.system.subject_counts().get(GRANT_SUBJECT, 0) == grants_before + 1
    assert resilient.witness.tokens_issued(record.authorization_id) == 1, "one code exchange"
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


def test_auth_killed_right_after_the_callback_catches_up(resilient: Resilient) -> None:
    stack = resilient.system.stack
    known = resilient.authorization_ids()
    grants_before = resilient.system.subject_counts().get(GRANT_SUBJECT, 0)
    with resilient.system.browser_client() as client:
        consent = start_consent(resilient, client, "electric-60min")
        # The customer has the status page; auth dies and the job runs on without it.
        resilient.kill("auth")
        record = wait_for(
            "the authorization", lambda: resilient.new_authorization("electric-60min", known)
        )
        wait_for("the job to end at the custodian", lambda: record.status == "revoked")
        stack.restart_service("auth")
        # Every progress event published while auth was down reaches the page.
        view = resilient.wait_job(client, consent)
    assert view["phase"] == "done", view
    assert view["revoked"] is True and view["delivered"] is True
    assert resilient.system.subject_counts().get(GRANT_SUBJECT, 0) == grants_before + 1
    resilient.assert_export_equals_truth(record)
    assert resilient.exports_of(record.subscription_id) == 1
    revoked_once_by_us(resilient, record.authorization_id)


def test_fetch_never_finishing_is_revoked_at_the_deadline(resilient: Resilient) -> None:
    stack = resilient.system.stack
    known = resilient.authorization_ids()
    # No fetcher at all, and a deadline of six seconds after consent.
    stack.child("fetcher").stop()
    stack.restart_service("exporter", {"GRANT_DEADLINE_MINUTES": "0.1"})
    try:
        with resilient.system.browser_client() as client:
            consent = start_consent(resilient, client, "electric-60min")
            view = resilient.wait_job(client, consent)
            record = resilient.new_authorization("electric-60min", known)
            assert record is not None
            assert view["phase"] == "failed", view
            assert is_human_sentence(str(view["message"])), view["message"]
            assert view["revoked"] is True
            revoked_once_by_us(resilient, record.authorization_id)
            grant = resilient.grant_row(record.subscription_id)
            assert (grant["status"], grant["reason"]) == ("revoked", "fetch_overdue"), grant
            # The fetcher comes back late, finds the grant revoked and gives up; the exporter
            # hears fetch.failed for a grant it already revoked and sends no second DELETE.
            failed_before = resilient.system.subject_counts().get(FETCH_FAILED_SUBJECT, 0)
            stack.restart_service("fetcher")
            wait_for(
                "the late fetch to fail",
                lambda: (
                    resilient.system.subject_counts().get(FETCH_FAILED_SUBJECT, 0) > failed_before
                ),
            )
            wait_for("the exporter to handle it", lambda: resilient.consumer_idle("exporter"))
            calls = resilient.witness.revocations(record.authorization_id)
            assert [c.changed for c in calls] == [True], calls
            assert resilient.grant_row(record.subscription_id)["status"] == "revoked"
            after = client.get(consent.status_json_url).json()
            assert (after["phase"], after["revoked"]) == ("failed", True), after
            assert resilient.exports_of(record.subscription_id) == 0
    finally:
        stack.restart_service("exporter")
        if not stack.child("fetcher").alive():
            stack.restart_service("fetcher")


def test_client_token_dying_early_is_fetched_again_for_the_revocation(
    resilient: Resilient,
) -> None:
    # A first customer leaves the exporter holding a cached client token...
    _consent, first = resilient.system.consent("electric-60min")
    assert first["phase"] == "done", first
    # ...which the custodian then kills early (expires_in still said 3600).
    sandbox = resilient.system.sandbox
    expired = resilient.admin.post("/admin/tokens/expire", json={"client_id": sandbox.client_id})
    assert expired.json()["expired"] >= 1
    refused_before = resilient.responses(401)
    known = resilient.authorization_ids()
    _consent, view = resilient.system.consent("gas-electric")
    assert view["phase"] == "done", view
    record = resilient.new_authorization("gas-electric", known)
    assert record is not None
    assert resilient.responses(401) > refused_before, "the dead token was refused"
    revoked_once_by_us(resilient, record.authorization_id)
    resilient.assert_export_equals_truth(record)


def test_no_token_code_or_secret_in_any_log_after_the_faults(resilient: Resilient) -> None:
    # Runs last in this module: retries, refusals, crashes and takeovers are where a token or
    # a code slips into an exception message. Every one ever issued is checked, not only the
    # ones the custodian still remembers.
    sandbox = resilient.system.sandbox
    stack_secrets = resilient.system.stack.secrets
    secrets = [*resilient.witness.issued_tokens, *sandbox.state.codes, sandbox.client_secret]
    secrets += [stack_secrets.sealing_key.partition(":")[2], stack_secrets.operator_password]
    assert len(resilient.witness.issued_tokens) >= 20, "the tests above must have issued tokens"
    logs = resilient.system.log_text()
    leaked = [s for s in secrets if s in logs]
    assert leaked == []
