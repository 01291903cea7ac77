"""``python -m services.audit``: run the audit service."""

from services.audit.app import build_app
from shared.runtime import run_service

run_service(build_app)
