"""Server-rendered dashboard (Jinja2), in Simplified Chinese."""
