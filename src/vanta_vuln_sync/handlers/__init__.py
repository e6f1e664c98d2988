"""The two Lambda entry points: `scheduler.handler` (RequestQueue) and `worker.handler` (PageQueue).

Thin by rule: Powertools logger, tracer and metrics, the container's batch processor, one call into the
pipeline per record.
"""
