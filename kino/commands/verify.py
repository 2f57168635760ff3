"""`kino verify FILE` (content credentials and watermark) and `kino safety check "PROMPT"`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

safety_app = typer.Typer(help="The safety policy: check prompts.", no_args_is_help=True)


def verify(
    file: Annotated[Path, typer.Argument(help="An MP4 or PNG to check.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the full manifest store and checks as JSON.")
    ] = False,
    no_watermark: Annotated[
        bool, typer.Option("--no-watermark", help="Skip the watermark detector.")
    ] = False,
    policy: Annotated[Path | None, typer.Option(help="Safety policy file (for trust anchors).")] = None,
) -> int:
    """Check FILE's C2PA content credentials and kino watermark (exit codes: see `kino verify --help`)."""
    from kino.safety.policy import load_policy_file
    from kino.safety.verify import verify_file

    report = verify_file(file, load_policy_file(policy), watermark=not no_watermark)
    s = report.summary()
    if as_json:
        print(json.dumps({"checks": s, "manifest_store": report.manifest.store}, indent=2, default=str))
    else:
        _print_summary(s)
    return report.outcome.exit_code


def _print_summary(s: dict) -> None:
    from rich.table import Table

    from kino.commands.output import console as make_console

    ok = s["outcome"] == "ok"
    console = make_console()  # off a terminal, whole lines: a long path is never cut
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("file", s["file"]),
        ("result", f"[{'green' if ok else 'red'}]{s['explanation']}[/]"),
        ("credentials", "yes" if s["credentials"] else "no"),
    ]
    if s["credentials"]:
        rows += [
            ("signature + hash", "valid" if s["signature_and_hash_valid"] else f"INVALID {s['failures']}"),
            (
                "signer",
                f"{s['signer']} ({s['issuer']}), {'trusted' if s['signer_trusted'] else 'not trusted'}",
            ),
            (
                "generator",
                ", ".join(f"{g.get('name')} {g.get('version', '')}" for g in s["claim_generator"] or []),
            ),
        ]
    if s["made_by_kino"]:
        rows += [
            ("model", f"{s['model']} ({s['mode']})"),
            ("settings", json.dumps(s["settings"])),
            ("frame review", json.dumps(s["frame_review"])),
        ]
        if s["prompt"] is not None:
            rows.append(("prompt", s["prompt"]))
    if s["watermark_present"] is not None:
        wm = f"present, id {s['watermark_id']}" if s["watermark_present"] else "not found with this install's key"
        rows.append(("watermark", f"{wm} (z={s['watermark_z']})"))
    elif not s["watermark_key"]:
        rows.append(("watermark", "not checked: this install has no watermark key (only the install that "
                                  "made a file holds the key that detects its mark)"))
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)


@safety_app.command("check")
def check(
    prompt: Annotated[str, typer.Argument(help="The prompt to check.")],
    policy: Annotated[Path | None, typer.Option(help="Safety policy file (TOML or JSON).")] = None,
) -> None:
    """Check a prompt against the safety policy: prints allow, or exits 5 with the reason."""
    from kino.safety.policy import load_policy_file
    from kino.safety.prompts import enforce_prompt

    decision = enforce_prompt(prompt, load_policy_file(policy))
    print("allow" if not decision.reason else f"allow ({decision.reason})", file=sys.stdout)


def _verify_help() -> str:
    from kino.safety.verify import Outcome  # light: the exit codes are defined once, there

    codes = "; ".join(f"{o.exit_code} {o.name.lower().replace('_', ' ')}" for o in Outcome)
    return f"Check FILE's C2PA content credentials and kino watermark.\n\nExit codes: {codes}; 3 unreadable file."


def register(app: typer.Typer) -> None:
    app.command("verify", help=_verify_help())(verify)
    app.add_typer(safety_app, name="safety")
