"""The WSGI entry point gunicorn loads in each worker: `server.wsgi:app`."""

from server.app import create_app

app = create_app()
