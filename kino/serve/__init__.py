"""kino serve: OpenAI's Videos API (Sora) and a web studio over kino's pipeline (docs/serve.md).

    config.py    ServeConfig, validated when built (limits, quotas and their defaults)
    lock.py      one server per data directory
    jobs.py      the SQLite (WAL) job store
    files.py     stored videos, previews and checked uploads
    worker.py    one generation at a time per device
    security.py  API keys, key guessing, the no-auth guard, request limits
    errors.py    OpenAI's error shape
    schemas.py   request bodies and responses, each one pydantic model
    intake.py    bodies parsed (JSON or multipart) and inputs bounded from their headers
    api.py       the routes
    app.py       the process: model, store, workers, studio
    studio/      the web studio (static files, no build step)
"""
