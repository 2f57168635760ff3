"""kino serve: OpenAI's Videos API (Sora) and a web studio over kino's pipeline (docs/serve.md).

    config.py    ServeConfig, validated when built
    jobs.py      the SQLite (WAL) job store
    files.py     stored videos, previews and checked uploads
    worker.py    one generation at a time per device
    security.py  API keys and request limits
    errors.py    OpenAI's error shape
    schemas.py   response models and request bodies
    api.py       the routes
    app.py       the process: model, store, workers, studio
    studio/      the web studio (static files, no build step)
"""
