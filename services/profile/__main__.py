"""`python -m services.profile`: run the profile service."""

from runtime.serve import serve
from services.profile.app import create_app
from services.profile.settings import ProfileSettings

settings = ProfileSettings()
serve(create_app(settings), host=settings.profile.host, port=settings.profile.port)
