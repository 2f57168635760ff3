"""schemathesis against /openapi.json: generated requests to every operation get no 5xx."""

from __future__ import annotations

import pytest

from kino.serve.app import create_app
from kino.serve.config import ServeConfig
from kino.serve.testing import ThreadServer, free_port, shared_model_dir, shared_pipe

KEY = "sk-kino-schema-key"


@pytest.mark.slow
def test_generated_requests_get_no_server_error(tmp_path, tmp_path_factory, monkeypatch):
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    monkeypatch.setenv("KINO_CONFIG_DIR", str(tmp_path / "cfg"))
    model = shared_model_dir(tmp_path_factory)
    config = ServeConfig(data_dir=tmp_path / "data", api_keys=(KEY,), queue_size=8, max_active_per_key=8)
    app = create_app(config, [shared_pipe(model)], "tiny")
    for w in app.state.service.workers:
        w.start = lambda: None  # requests only: nothing is generated
    failures: list[str] = []
    codes: list[int] = []
    with ThreadServer(app, free_port()) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [op.ok() for op in schema.get_all_operations()]
        assert len(operations) >= 13

        def check(op):
            @settings(max_examples=12, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy())
            def run(case):
                for headers in ({"Authorization": f"Bearer {KEY}"}, {}):
                    r = case.call(base_url=server.url, headers=headers, timeout=30)
                    codes.append(r.status_code)
                    if r.status_code >= 500:
                        failures.append(f"{op.method.upper()} {op.path} -> {r.status_code}: {r.text[:200]}")
                    elif r.status_code >= 400:
                        assert set(r.json()["error"]) >= {"message", "type", "param", "code"}

            run()

        for op in operations:
            check(op)
    assert not failures, "\n".join(failures[:10])
    assert len(codes) > 100 and {200, 400, 401} <= set(codes)  # it reached the routes, not only the auth check
