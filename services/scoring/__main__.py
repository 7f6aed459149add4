"""`python -m services.scoring`: run the scoring service."""

from runtime.serve import serve
from services.scoring.app import create_app
from services.scoring.settings import ScoringSettings

settings = ScoringSettings()
serve(create_app(settings), host=settings.scoring.host, port=settings.scoring.port)
