"""A service run in the test's own event loop, exactly as its process runs it but cheap to start
twice: the test waits for its ``/readyz`` and, at the end, for a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx


@asynccontextmanager
async def serving(
    serve: Callable[[asyncio.Event], Awaitable[int]],
    ready_url: str,
    *,
    name: str = "the service",
    verify: ssl.SSLContext | bool = True,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
) -> AsyncIterator[None]:
    """Run ``serve(stop)`` (a service's ``main`` with its ``stop`` event) for the block.

    The block starts once ``ready_url`` answers 200; afterwards ``stop`` is set and the service
    must end within ``stop_timeout`` with exit code 0. A service that ends during start-up
    raises its own error (or says which exit code it gave).
    """
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(stop))
    try:
        await _until_ready(task, ready_url, name=name, verify=verify, timeout=start_timeout)
        yield
    finally:
        stop.set()
        exit_code = await asyncio.wait_for(task, stop_timeout)
    if exit_code != 0:
        raise AssertionError(f"{name} stopped with exit code {exit_code}")


async def _until_ready(
    task: asyncio.Future[int],
    url: str,
    *,
    name: str,
    verify: ssl.SSLContext | bool,
    timeout: float,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with httpx.AsyncClient(verify=verify) as client:
        while loop.time() < deadline:
            if task.done():
                raise AssertionError(f"{name} stopped during start-up: {task.result()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{name} never became ready at {url}")
