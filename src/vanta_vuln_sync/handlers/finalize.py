"""Finalize Lambda, fed by FinalizeQueue: finishes a run once its last range committed (statistics,
report, finding lists, digest). Its own function so that it alone carries the memory and the S3 and SNS
permissions a million-vulnerability run needs, and the range workers stay small."""

from __future__ import annotations

from vanta_vuln_sync.handlers.container import batch_handler
from vanta_vuln_sync.handlers.records import finalize_record

# Processes a batch of Finalize messages; returns the partial batch response. No Vanta client: Finalize
# reads S3 and the table only, and its role cannot read the secret.
handler = batch_handler(finalize_record, vanta=False)
