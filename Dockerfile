# One image for the platform; each service is a different command of it:
#   python -m services.profile | services.scoring | services.engagement | services.gateway
#   c360 migrate && c360 topics   (one-shot, before the services)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 c360

WORKDIR /app

# Copy only what the package is built from. Never `COPY . /app`: that would bake .venv/ and
# .c360/ (a local database and development secrets) into the image.
COPY pyproject.toml requirements.lock README.md ./
COPY contracts ./contracts
COPY runtime ./runtime
COPY services ./services
COPY c360 ./c360

# Editable install, so the Alembic trees and the tier policy are used in place from /app.
RUN pip install --no-cache-dir -c requirements.lock -e .

USER c360
# Anything written locally (only development secrets, which production does not use) goes here.
ENV C360_DATA_DIR=/home/c360/.c360

EXPOSE 8000
CMD ["python", "-m", "services.gateway"]
