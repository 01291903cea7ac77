"""``python -m services.workspace``: run the workspace (console, API, health and metrics on one port)."""

import asyncio

import uvicorn

from services.workspace.app import build_app


def main() -> None:
    app, settings = build_app()
    config = uvicorn.Config(
        app,
        host=settings.health_host,
        port=settings.health_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )
    asyncio.run(uvicorn.Server(config).serve())


main()
