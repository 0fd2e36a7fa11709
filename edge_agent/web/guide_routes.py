"""The kiosk as a touch query terminal: the center's items (事项) and their 办事指南, searched and printed.

Public routes, like the kiosk's: a guide is published information (公开) and holds nothing about anybody. Every
answer reads `agent.config` at that moment, so an item the county changed shows at the next request.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Query

from edge_agent.agent import EdgeAgent
from edge_agent.guide import search


def add_guide_routes(app: FastAPI, agent: EdgeAgent) -> None:
    def center_info() -> dict:
        config = agent.config
        return {"name": config.name, "opening_hours": config.opening_hours, "consult_phone": config.consult_phone,
                "complaint_phone": config.complaint_phone}

    def service_names() -> dict[str, str]:
        return {service.prefix: service.name for service in agent.config.services}

    @app.get("/api/items")
    async def items(q: str = Query("", max_length=64), service: str = Query("", max_length=1)) -> dict:
        """The center's items (all, or a service's, or those whose name or code holds `q`) and its hours and
        phones, as the kiosk's guide and the hall display show them."""
        names = service_names()
        found = [item for item in search(agent.config.items, q) if not service or item.prefix == service]
        return {"center": center_info(), "items": [item.public(names.get(item.prefix, "")) for item in found]}

    @app.get("/api/items/{code}")
    async def item(code: str) -> dict:
        try:
            found = agent.config.item(code)
        except KeyError:
            raise HTTPException(404, "本中心没有这个事项") from None
        return found.public(service_names().get(found.prefix, ""))

    @app.post("/api/items/{code}/notice")
    async def print_notice(code: str) -> dict:
        """Print the item's 一次性告知书 on the ticket printer."""
        try:
            printed = await agent.print_notice(code)
        except KeyError:
            raise HTTPException(404, "本中心没有这个事项") from None
        return {"printed": printed}
