"""``BATCH_SCOPE=bulk``: grants that arrive close together share one Bulk request.

PG&E gives each third party one Bulk resource, ``Batch/Bulk/{BulkID}``, called with the client
token: it answers 202 and later POSTs a BatchList naming ``.../Batch/Bulk/{BulkID}?correlationID=
...``, whose GET (client token again) holds the data of every active subscription in the requested
range (PG&E Share My Data; ESPI's Bulk). So a burst of consents costs one request and one GET
instead of a UsagePoint list and a batch per meter for each customer.

A job asks :meth:`BulkRequests.data_for` for its subscription's data over a window. The first
job to ask opens a *round*; every job asking for the same window within ``gather_seconds`` joins
it. Then one Bulk request is sent and its BatchList awaited (as for any 202, a re-request after
``notification_timeout``, ``rerequests`` times); the announced document is cut per subscription
(:func:`scwadd_fetcher.documents.split_by_subscription`) and each member gets its own part; the
rest (other customers, subscriptions with no job here) is never stored. A BatchList naming a
Bulk URL with a correlationID that is not ours (PG&E names batches by its own id) is a candidate:
it is fetched once and used if it holds a waiting member's subscription. A subscription absent
from every answer gets None (its job fails with a sentence and its grant is revoked).

The BulkID comes from ``PGE_BULK_ID`` or, once per process, from the custodian's Authorization
documents (the third party's Bulk ``resourceURI``). When they name none, a round raises
:class:`NoBulkResource` and its jobs fetch per UsagePoint instead (``BATCH_SCOPE=bulk`` is the
default, and a registration without a Bulk resource must still work).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass, field

from lxml import etree

from scwadd_fetcher.custodian import EspiSession, PermanentError
from scwadd_fetcher.documents import (
    NO_DATA,
    Feed,
    MalformedDocument,
    check_feed,
    read_feed,
    split_by_subscription,
)
from scwadd_fetcher.notifications import BatchWaiters, Expectation
from scwadd_fetcher.windows import Window

log = logging.getLogger(__name__)

ESPI_RESOURCE_URI = "{http://naesb.org/espi}resourceURI"


def bulk_id_from_authorizations(body: bytes) -> str | None:
    """The BulkID in the ``resourceURI`` of the custodian's Authorization document(s) (ESPI
    ``Authorization/resourceURI``: ``.../Batch/Bulk/{BulkID}`` for the third party's own)."""
    try:
        for _event, element in etree.iterparse(
            io.BytesIO(body),
            events=("end",),
            tag=ESPI_RESOURCE_URI,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
        ):
            text = (element.text or "").strip().split("?")[0].rstrip("/")
            if "/Batch/Bulk/" in text:
                bulk_id = text.rsplit("/Batch/Bulk/", 1)[1]
                if bulk_id and "/" not in bulk_id:
                    return bulk_id
    except etree.XMLSyntaxError:
        return None
    return None


class NoBulkResource(PermanentError):
    """The custodian's Authorization documents name no Bulk resource for this registration (and
    ``PGE_BULK_ID`` is unset): Bulk rounds cannot be made; a job fetches on its own instead."""


@dataclass(frozen=True)
class BulkOptions:
    api_base: str
    gather_seconds: float = 5.0
    notification_timeout: float = 300.0
    rerequests: int = 2
    bulk_id: str | None = None


@dataclass
class _Round:
    window: Window
    members: dict[str, asyncio.Future[Feed | None]] = field(default_factory=dict)

    def waiting(self) -> dict[str, asyncio.Future[Feed | None]]:
        return {sub: fut for sub, fut in self.members.items() if not fut.done()}


class BulkRequests:
    """The Bulk rounds of one fetcher process."""

    def __init__(self, session: EspiSession, waiters: BatchWaiters, options: BulkOptions) -> None:
        self.session = session  # its calls use the client token only
        self.waiters = waiters
        self.options = options
        self._bulk_id = options.bulk_id
        self._bulk_id_lock = asyncio.Lock()
        self._no_bulk = False  # the Authorization documents named none: not asked again
        self._open: dict[Window, _Round] = {}
        self._consumed: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.rounds = 0

    async def data_for(self, subscription_id: str, window: Window) -> Feed | None:
        """The subscription's part of a Bulk answer covering ``window``: an Atom feed (read once,
        :func:`~scwadd_fetcher.documents.read_feed`), :data:`NO_DATA` when the custodian has no
        data in the window, None when the subscription is in no answer.
        Raises what the round raised (:class:`PermanentError`, a range refusal)."""
        loop = asyncio.get_running_loop()
        current = self._open.get(window)
        if current is None:
            current = _Round(window)
            self._open[window] = current
            task = loop.create_task(self._run(current))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future = current.members.get(subscription_id)
        if future is None or future.done():
            future = loop.create_future()
            current.members[subscription_id] = future
        return await asyncio.shield(future)

    async def _run(self, current: _Round) -> None:
        await asyncio.sleep(self.options.gather_seconds)
        if self._open.get(current.window) is current:
            del self._open[current.window]  # later jobs open the next round
        self.rounds += 1
        try:
            await self._serve(current)
        except BaseException as error:
            # A cancelled round (shutdown) is no answer from the custodian: its jobs raise
            # something other than PermanentError, so their grants are redelivered, not failed.
            interrupted = RuntimeError("the Bulk round was interrupted")
            for future in current.waiting().values():
                future.set_exception(error if isinstance(error, Exception) else interrupted)
            if not isinstance(error, Exception):
                raise
        finally:
            for future in current.waiting().values():
                future.set_result(None)

    async def _bulk_url(self) -> str:
        base = self.options.api_base.rstrip("/")
        async with self._bulk_id_lock:
            if self._bulk_id is None:
                if not self._no_bulk:
                    answer = await self.session.call(
                        f"{base}/Authorization",
                        client_token=True,
                        read_body=bulk_id_from_authorizations,
                    )
                    self._bulk_id = answer.read
                    self._no_bulk = self._bulk_id is None
                if self._bulk_id is None:
                    raise NoBulkResource(
                        "the utility's Authorization documents name no Bulk resource for this "
                        "application (set PGE_BULK_ID)"
                    )
                log.info("the custodian's Bulk resource is Batch/Bulk/%s", self._bulk_id)
        return f"{base}/Batch/Bulk/{self._bulk_id}"

    async def _serve(self, current: _Round) -> None:
        from scwadd_fetcher.fetch import refusal_of  # the same reading of a 400 as a job's

        url = await self._bulk_url()
        window = current.window
        correlation_ids: set[str] = set()
        log.info("one Bulk request for %d subscription(s)", len(current.members))
        for _ in range(1 + self.options.rerequests):
            # The Bulk request carries no correlationID (with one, PG&E's Bulk URL names the
            # data a notification announced); the custodian names the batch by its own id, so
            # announced Bulk URLs are candidates, kept when they hold a waiting subscription.
            expectation = self.waiters.expect(correlation_ids, url, accepts_candidates=True)
            try:
                params = {"published-min": str(window.start), "published-max": str(window.end)}
                response = await self.session.call(
                    url,
                    params=params,
                    client_token=True,
                    read_body=check_feed,
                    ok=(200, 202, 204, 400),
                )
                if response.status_code == 200:
                    await self._deliver(current, response.content, exact=True)
                    return
                if response.status_code == 204:
                    for future in current.waiting().values():
                        future.set_result(NO_DATA)
                    return
                if response.status_code == 400:
                    refusal = refusal_of(response.text, window)
                    if refusal is not None:
                        raise refusal
                if await self._await(current, expectation):
                    return
            finally:
                self.waiters.cancel(expectation)
            log.warning(
                "the Bulk answer for %d subscription(s) did not come within %.0f s; asking again",
                len(current.waiting()),
                self.options.notification_timeout,
            )

    async def _await(self, current: _Round, expectation: Expectation) -> bool:
        """Fetch what is announced until every member has its part; False at the deadline."""
        deadline = time.monotonic() + self.options.notification_timeout
        while (announced := await self.waiters.next(expectation, deadline)) is not None:
            for item in announced:
                if item.url in self._consumed or "/Batch/Bulk/" not in item.url:
                    continue
                answer = await self.session.call(
                    item.url,
                    client_token=True,
                    read_body=check_feed,
                    ok=(200, 204, 403, 404),
                )
                if answer.status_code in (403, 404):
                    continue
                self._consumed.add(item.url)
                if answer.status_code == 204:
                    if item.exact:
                        for future in current.waiting().values():
                            future.set_result(NO_DATA)
                    continue
                await self._deliver(current, answer.content, exact=item.exact)
            if not current.waiting():
                return True
        return False

    async def _deliver(self, current: _Round, body: bytes, *, exact: bool) -> None:
        try:
            # Every subscription's year: seconds of parsing, kept off the event loop (leases,
            # NATS acks and the other jobs go on meanwhile).
            split = await asyncio.to_thread(split_by_subscription, body)
        except MalformedDocument as error:
            log.warning("a Bulk document could not be cut per subscription: %s", error)
            return
        mine = 0
        for subscription_id, future in current.waiting().items():
            part = split.parts.get(subscription_id)
            if part is not None:
                # Each member's part is a document of its own, read once here (checked,
                # readings counted, UsagePoints named); the whole was checked on arrival.
                try:
                    feed = await asyncio.to_thread(read_feed, part)
                except MalformedDocument as error:
                    if not future.done():
                        future.set_exception(error)
                else:
                    if not future.done():
                        future.set_result(feed)
                mine += 1
        log.info(
            "a Bulk document (%s) held %d subscription(s), %d of them waited for here; "
            "%d shared and %d unowned entries",
            "ours" if exact else "announced by the custodian's own id",
            len(split.parts),
            mine,
            split.shared_entries,
            split.dropped_entries,
        )
