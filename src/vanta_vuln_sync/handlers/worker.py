"""Worker Lambda, fed by PageQueue: runs PageRange steps (up to RANGES_IN_FLIGHT at once); the last range
sends Finalize to the Finalize function (handlers/finalize.py)."""

from __future__ import annotations

from vanta_vuln_sync.handlers.container import batch_handler
from vanta_vuln_sync.handlers.records import page_record

# Processes a batch of PageRange messages; returns the partial batch response. Staggered: the ends of
# invocations that began together are spread over WORKER_STAGGER of their time. Failed records come back
# after a growing delay (handlers/retry_later.py).
handler = batch_handler(page_record, staggered=True, pages=True)
