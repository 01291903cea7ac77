"""``python -m services.intake``: run the intake service."""

from services.intake.app import build_app
from shared.runtime import run_service

run_service(build_app)
