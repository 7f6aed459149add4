"""`python -m services.engagement`: run the engagement service."""

from runtime.serve import serve
from services.engagement.app import create_app
from services.engagement.settings import EngagementSettings

settings = EngagementSettings()
serve(create_app(settings), host=settings.engagement.host, port=settings.engagement.port)
