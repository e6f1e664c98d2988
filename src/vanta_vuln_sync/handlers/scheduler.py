"""Scheduler Lambda, fed by RequestQueue: each SyncRequest starts (or joins) a run and enqueues its ranges."""

from __future__ import annotations

from vanta_vuln_sync.handlers.container import batch_handler
from vanta_vuln_sync.handlers.records import sync_request_record

# Processes a batch of SyncRequests; returns the partial batch response.
handler = batch_handler(sync_request_record)
