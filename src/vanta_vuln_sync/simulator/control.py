"""The simulator's control endpoints under `/_sim/` (not Vanta's; never counted as API requests).

Each one calls a public `Simulator` method, so a test in the same process can do the same in Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from vanta_vuln_sync.simulator.churn_schedule import parse_churn_request
from vanta_vuln_sync.simulator.config import SimulatorConfigError

if TYPE_CHECKING:
    from vanta_vuln_sync.simulator.server import Simulator


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    """`payload` as a JSON response."""
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """Vanta's error body, `{"error": code, "message": message}`."""
    return json_response(status, {"error": code, "message": message}, headers)


def add_control_routes(app: web.Application, sim: Simulator) -> None:
    """Route `/_sim/counters`, `/_sim/config`, `/_sim/revoke-token`, `/_sim/evolve`, `/_sim/churn`."""

    async def counters(request: web.Request) -> web.Response:
        return json_response(200, sim.counters.as_dict())

    async def config(request: web.Request) -> web.Response:
        return json_response(200, sim.config.public_dict())

    async def configure(request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise SimulatorConfigError("the body must be a JSON object of config changes")
            sim.configure(**changes)
        except (orjson.JSONDecodeError, SimulatorConfigError) as exc:
            return error_response(400, "invalid_config", str(exc))
        return json_response(200, sim.config.public_dict())

    async def revoke(request: web.Request) -> web.Response:
        sim.revoke_token()
        return json_response(200, {"revoked": True})

    async def evolve(request: web.Request) -> web.Response:
        raw = request.query.get("seed", "1")
        if not raw.isdigit():
            return error_response(400, "invalid_request", "seed must be a non-negative integer")
        change = sim.evolve(int(raw))
        return json_response(
            200,
            {
                "fixed": len(change.fixed),
                "new": len(change.new),
                "deactivated": len(change.deactivated),
                "remediations": len(change.remediations),
            },
        )

    async def churn_status(request: web.Request) -> web.Response:
        return json_response(200, sim.churn_status())

    async def churn(request: web.Request) -> web.Response:
        try:
            parsed = parse_churn_request(orjson.loads(await request.read()))
            sim.configure(**parsed.changes)
            if parsed.reset_truth:
                sim.churn(reset_truth=True)
            event = None
            if parsed.burst is not None:
                event = sim.burst(
                    delete=parsed.burst.delete,
                    insert=parsed.burst.insert,
                    after_requests=parsed.after_requests,
                    resource=parsed.burst.resource,
                )
        except (orjson.JSONDecodeError, SimulatorConfigError) as exc:
            return error_response(400, "invalid_churn", str(exc))
        status = sim.churn_status()
        if event is not None:
            status["applied"] = {
                "resource": event.resource,
                "deleted": len(event.deleted),
                "inserted": len(event.inserted),
            }
        return json_response(200, status)

    app.router.add_get("/_sim/counters", counters)
    app.router.add_get("/_sim/config", config)
    app.router.add_post("/_sim/config", configure)
    app.router.add_post("/_sim/revoke-token", revoke)
    app.router.add_post("/_sim/evolve", evolve)
    app.router.add_get("/_sim/churn", churn_status)
    app.router.add_post("/_sim/churn", churn)
