"""The three Lambda entry points: `scheduler.handler` (RequestQueue), `worker.handler` (PageQueue) and
`finalize.handler` (FinalizeQueue).

Thin by rule: Powertools logger, tracer and metrics, the container's batch processor, one call into the
pipeline per record.
"""
