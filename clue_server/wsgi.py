"""Entry point for gunicorn: ``gunicorn -c clue_server/gunicorn.conf.py clue_server.wsgi:app``."""

import gc

from clue_server import create_app

app = create_app()

# Each worker imports this after the fork (gunicorn.conf.py does not preload). What it
# holds now (modules, the app, SQLAlchemy's metadata: about 110,000 objects) lives as
# long as the worker; frozen, the collector stops walking it. A full collection over it
# paused a request by 95-120 ms on the development machine, the p99 of a look-up under
# load; after the freeze it takes microseconds.
gc.collect()
gc.freeze()
