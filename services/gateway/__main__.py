"""`python -m services.gateway`: run the public API."""

from runtime.serve import serve
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

settings = GatewaySettings()
serve(create_app(settings), host=settings.gateway.host, port=settings.gateway.port)
