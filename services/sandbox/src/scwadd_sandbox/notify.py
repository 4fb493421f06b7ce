"""The asynchronous half of a batch request: POST a BatchList to the third party's notification URI.

PG&E documents neither a signature nor a retry policy for notifications, so the sandbox sends
each one once (or, as an injected fault, twice, later, never, or not well-formed), over HTTPS,
verifying the receiver against the configured CA. Like PG&E's, it arrives late: after the job's
delay (``SandboxConfig.notification_delay``, 10-40 s by default) plus any fault delay. The batch
stays "pending" (a second identical request gets 400) until the notification has been sent, lost
or has failed.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import httpx

from scwadd_sandbox import documents
from scwadd_sandbox.faults import malformed_batch_list
from scwadd_sandbox.state import BatchJob, SandboxState

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, job: BatchJob) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        # The loop only keeps weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def result_url(self, job: BatchJob) -> str:
        paths = documents.resource_paths(self.state.config.espi_base)
        return f"{paths.root}/Batch/Bulk/{job.bulk_id}?correlationID={job.correlation_id}"

    async def _deliver(self, job: BatchJob) -> None:
        decision = self.state.faults.decide_notification()
        stopped = False
        try:
            delay = job.delay_seconds + decision.delay_seconds
            if delay:
                await asyncio.sleep(delay)
            if decision.lost:
                job.notification = "lost"
                log.info("notification for batch %s lost on purpose (fault)", job.correlation_id)
                return
            registration = self.state.registration(job.client_id)
            if registration is None:
                job.notification = "failed: client no longer registered"
                return
            body = documents.batch_list([self.result_url(job)])
            if decision.malformed:
                body = malformed_batch_list(body)
            context = ssl.create_default_context(cafile=str(self.state.config.ca_file))
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            async with httpx.AsyncClient(verify=context, timeout=30.0) as client:
                for _copy in range(decision.copies):
                    response = await client.post(
                        registration.notification_uri,
                        content=body,
                        headers={"Content-Type": "application/xml"},
                    )
                    job.deliveries += 1
                    if response.status_code >= 300:
                        job.notification = f"failed: receiver answered {response.status_code}"
                        return
            job.notification = "delivered"
        except httpx.HTTPError as exc:
            job.notification = f"failed: {type(exc).__name__}"
            log.warning(
                "notification for batch %s failed: %s", job.correlation_id, type(exc).__name__
            )
        except asyncio.CancelledError:
            # The sandbox is stopping: the batch stays pending (a restart with a state file
            # sends its notification then).
            stopped = True
            raise
        finally:
            if not stopped:
                job.pending = False
                self.state.changed()
                job.settled.set()

    async def drain(self) -> None:
        """Cancel deliveries still waiting (on shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
