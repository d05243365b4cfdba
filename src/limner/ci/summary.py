"""The Markdown summary of a CI run, from the JSON the workflow's ``limner`` steps saved.

``python -m limner.ci.summary DIR`` reads ``generate.json`` (``limner generate --json``), ``status.json``
(``limner status --json``), ``sync.json`` (``limner sync --json``) and ``missing-before.json`` /
``missing-after.json`` (``limner check-missing --json`` before and after the run) from ``DIR`` and prints
the summary: counts, spend, the new entries and the failures. A file that is missing or not JSON (a
step that failed) leaves its part out. Standard library only: it runs on a bare CI runner.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

#: at most this many failures and new ids are listed (a job summary is capped at 1 MiB)
MAX_LISTED = 50


def _load(folder: Path, name: str) -> Any:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _ids(ids: list[str]) -> str:
    shown = ", ".join(f"`{i}`" for i in ids[:MAX_LISTED])
    return shown + (f" and {len(ids) - MAX_LISTED} more" if len(ids) > MAX_LISTED else "")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(folder: Path) -> str:
    gen, status, sync = _load(folder, "generate.json"), _load(folder, "status.json"), _load(folder, "sync.json")
    before, after = _load(folder, "missing-before.json"), _load(folder, "missing-after.json")
    lines = ["## Limner images", ""]
    if isinstance(gen, dict):
        lines.append(f"Generated **{gen.get('generated', 0)}** of {gen.get('planned', 0)} planned entries for "
                     f"**${gen.get('spend_usd') or 0:.2f}** ({gen.get('provider_calls', 0)} provider calls); "
                     f"{gen.get('failed', 0)} failed, {gen.get('not_started', 0)} not started.")
        if gen.get("budget_stopped"):
            lines.append("The budget stopped the run: the remaining entries wait for the next run.")
        if gen.get("auth_error"):
            lines.append(f"A provider refused the credentials: {_cell(gen['auth_error'])}")
    else:
        lines.append("`limner generate` did not finish: see the job log.")
    if isinstance(before, dict) and isinstance(after, dict):
        new = sorted(set(before.get("missing", [])) - set(after.get("missing", [])))
        lines += ["", f"**New images ({len(new)}):** " + (_ids(new) if new else "none")]
        still = after.get("missing", [])
        lines.append(f"Still without an image: {len(still)} of {after.get('entries', 0)} entries"
                     + (f" ({_ids(still)})." if still else "."))
    if isinstance(status, dict):
        counts = ", ".join(f"{state} {n}" for state, n in (status.get("by_state") or {}).items() if n)
        lines += ["", f"Entries by state: {counts or 'none'}. Spend recorded over all runs: "
                      f"${status.get('spend_usd') or 0:.2f}."]
    if isinstance(sync, dict):
        lines.append(f"Sync: {sync.get('published', 0)} entries in the manifest, {sync.get('written', 0)} placeholders "
                     f"written, {len(sync.get('removed') or [])} removed"
                     + (", manifest changed." if sync.get("manifest_changed") else ", manifest unchanged."))
        absent = sync.get("not_in_events_table") or []
        if sync.get("written_back") or sync.get("written_back_unchanged") or absent:  # sync.events_database_url
            lines.append(f"Events table: {sync.get('written_back', 0)} rows updated, {sync.get('written_back_unchanged', 0)} "
                         f"already up to date" + (f", {len(absent)} ids without a row ({_ids(absent)})." if absent else "."))
    failures = gen.get("failures") if isinstance(gen, dict) else None
    if failures:
        lines += ["", "| Failed entry | Error |", "| --- | --- |"]
        lines += [f"| `{_cell(f.get('id', '?'))}` | {_cell(f.get('error', ''))} |" for f in failures[:MAX_LISTED]]
        if len(failures) > MAX_LISTED:
            lines.append(f"\n… and {len(failures) - MAX_LISTED} more failures (`limner status`).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m limner.ci.summary DIR", file=sys.stderr)
        return 2
    sys.stdout.write(render(Path(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
