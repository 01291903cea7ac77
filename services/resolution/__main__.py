"""``python -m services.resolution``: run the resolution service."""

from services.resolution.app import build_app
from shared.runtime import run_service

run_service(build_app)
