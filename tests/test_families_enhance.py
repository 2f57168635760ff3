"""Prompt enhancement for real-world families: as written offline, the family's caption style online."""

from __future__ import annotations

from test_enhance import ChatServer

from kino.enhance import (
    FAMILY_SYSTEM_PROMPTS,
    SYSTEM_PROMPT,
    AsWritten,
    EnhancerConfig,
    WorldExpander,
    make_enhancer,
)


def test_offline_a_real_world_model_takes_the_prompt_as_written():
    assert isinstance(make_enhancer(EnhancerConfig(), family="kino"), WorldExpander)
    out = make_enhancer(EnhancerConfig(), family="wan").enhance("a fox runs through snow at sunset", seed=3)
    assert isinstance(make_enhancer(EnhancerConfig(), family="ltx"), AsWritten)
    assert out.text == "a fox runs through snow at sunset" and len(out.notes) == 1 and "as written" in out.notes[0]


def test_the_llm_writes_in_the_family_style_and_falls_back_to_as_written():
    config = EnhancerConfig(backend="openai", base_url="http://127.0.0.1:9/v1", retries=0)
    with ChatServer(["ok"]) as srv:
        enhancer = make_enhancer(EnhancerConfig(backend="openai", base_url=srv.url, retries=0), family="ltx")
        out = enhancer.enhance("a fox runs", seed=1)
    msgs = srv.requests[0]["body"]["messages"]
    assert msgs[0] == {"role": "system", "content": FAMILY_SYSTEM_PROMPTS["ltx"]} and len(msgs) == 2  # no world examples
    assert msgs[1]["content"] == "a fox runs" and out.text.startswith("A detailed paragraph")
    with ChatServer(["ok"]) as srv:
        make_enhancer(EnhancerConfig(backend="openai", base_url=srv.url, retries=0), family="kino").enhance("a ball")
    assert srv.requests[0]["body"]["messages"][0]["content"] == SYSTEM_PROMPT  # kino's own keeps the world style
    failed = make_enhancer(config, family="wan").enhance("a fox runs", seed=1)  # nothing listens on port 9
    assert failed.fell_back and failed.text == "a fox runs"
