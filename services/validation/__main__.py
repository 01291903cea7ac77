"""``python -m services.validation``: run the validation service."""

from services.validation.app import build_app
from shared.runtime import run_service

run_service(build_app)
