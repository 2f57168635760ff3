"""`kino enhance "PROMPT"`: print the detailed caption a short prompt expands to."""

from __future__ import annotations

import typer

from kino.enhance import EnhanceBackend


def enhance_cmd(
    prompt: str = typer.Argument(..., help="A short prompt, e.g. 'red ball bouncing'."),
    seed: int = typer.Option(0, help="Seed for what the prompt leaves open (same seed, same caption)."),
    backend: EnhanceBackend = typer.Option(
        None, help="world (offline, default) or openai (KINO_ENHANCE_BASE_URL/_MODEL/_API_KEY)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Expand a short prompt into the detailed caption the model was trained on."""
    import json
    import warnings

    from kino.enhance import EnhancerConfig, enhance

    config = EnhancerConfig.from_env(backend=backend)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = enhance(prompt, seed=seed, config=config)
    for w in caught:
        typer.echo(f"kino: warning: {w.message}", err=True)
    for note in out.notes:
        if not any(str(w.message) == note for w in caught):  # a fallback's note is its warning already
            typer.echo(f"note: {note}", err=True)
    typer.echo(json.dumps(out.to_dict(), indent=2) if json_out else out.text)


def register(app: typer.Typer) -> None:
    app.command("enhance")(enhance_cmd)
