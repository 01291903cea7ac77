"""``python -m services.routing``: run the routing service."""

from services.routing.app import build_app
from shared.runtime import run_service

run_service(build_app)
