"""The fleet app served by a real uvicorn on a free port, in a thread of the test process.

Lets a browser test seed the database through the ingest's plain functions
and read the pages over real HTTP, without a subprocess.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from tests.support.waiting import wait_until
from tools.mosquitto import free_port


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve `app` until the block ends; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="fleet-uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
