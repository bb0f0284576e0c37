"""Prefect flows composing the tasks: campaign, simulate-batch (Dask), steer.

Prefect's ephemeral local server (used when ``PREFECT_API_URL`` is unset) gets 120 s to start
instead of Prefect's 20 s: on a loaded 2-core machine the first start can take longer, and the
run would fail with "Timed out while attempting to connect to ephemeral Prefect API server". Set
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` to choose another value; it must be set
before Prefect is imported, which is why it is set here, above every flow module.
"""
import os

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
