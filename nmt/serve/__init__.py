"""``nmt serve``'s library: an HTTP translation service over any Translator engine.

``text.py`` (texts into sentences and back, HTML), ``languages.py`` (codes, detection),
``batcher.py`` (dynamic batching on a worker thread), ``metrics.py`` (counters),
``service.py`` (models by language pair, limits), ``app.py`` (the FastAPI application,
which needs the serve extra, ``.[serve]``), ``static/`` (the web page).
"""
