"""End-to-end tests against real gunicorn (a package, so its servers are package-scoped)."""
