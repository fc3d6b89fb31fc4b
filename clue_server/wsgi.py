"""Entry point for gunicorn: ``gunicorn -c clue_server/gunicorn.conf.py clue_server.wsgi:app``."""

from clue_server import create_app

app = create_app()
