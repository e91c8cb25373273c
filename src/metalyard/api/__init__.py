"""The REST API: a FastAPI app that mounts each concept's router under /v1."""

from metalyard.api.app import create_app

__all__ = ["create_app"]
