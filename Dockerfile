# One image for the platform; each service is a different command of it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --create-home --uid 10001 c360
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir -c requirements.lock -e . && chown -R c360 /app
USER c360
EXPOSE 8000
CMD ["python", "-m", "services.gateway"]
