"""Text output never cuts an id: tables at 80 columns print every id, style, provider and model whole."""

from __future__ import annotations

import pytest

from projects import make_entries

LONG_ID = "a-" + "very-long-entry-identifier-" * 3 + "that-ends-here"  # 97 characters: wider than the table's room
MID_ID = "an-entry-whose-id-is-long-enough-to-be-cut-in-a-table-at-80"  # fits once the other columns fold
LONG_STYLE = "an-unusually-long-style-name-for-a-project-that-likes-words"
LONG_MODEL = "some-owner/some-image-model:" + "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    from projects import ProjectDir

    p = ProjectDir(tmp_path_factory.mktemp("narrow") / "proj")
    p.root.mkdir()
    # appended under [providers.fake], which write_config writes last
    p.write_config(f'model = "{LONG_MODEL}"\nrefuse_ids = ["{LONG_ID}"]\n')
    entries = make_entries(3)
    entries[0]["id"], entries[1]["id"] = LONG_ID, MID_ID
    entries[2]["style"] = LONG_STYLE
    p.write_catalog(entries)
    (p.root / "styles").mkdir()
    (p.root / "styles" / f"{LONG_STYLE}.toml").write_text(
        'description = "A style whose name and description are both longer than a narrow table column allows."\n'
        'positive = "{{ title }}"\n', encoding="utf-8")
    env = p.env(COLUMNS="80")
    outputs = {"plan": p.run("plan", env=env, check=True)}
    p.run("generate", "--no-progress", env=env)  # LONG_ID is refused: it fails
    for name, args in {"status": ["status"], "check-missing": ["check-missing"], "costs": ["costs"],
                       "styles": ["styles"], "providers": ["providers"], "style": ["styles", "oil-painting"]}.items():
        outputs[name] = p.run(*args, env=env)
    return outputs


def whole_on_a_line(text: str, word: str) -> bool:
    return any(word in line for line in text.splitlines())


def column(text: str, header: str) -> list[str]:
    """The cells of a table's column, a folded cell's pieces joined (a row starts where the first column has text)."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if "┃" in line and header in [c.strip() for c in line.split("┃")])
    index = [c.strip() for c in lines[top].split("┃")].index(header)
    cells: list[str] = []
    for line in lines[top + 2:]:
        if "│" not in line:
            break
        parts = [c.strip() for c in line.split("│")]
        if parts[0]:
            cells.append(parts[index])
        else:
            cells[-1] += parts[index]
    return cells


@pytest.mark.parametrize(("command", "words"), [
    ("plan", [LONG_ID, MID_ID]),
    ("status", [LONG_ID]),
    ("check-missing", [LONG_ID]),
    ("costs", [LONG_MODEL]),
    ("styles", [LONG_STYLE, "illuminated-manuscript"]),
    ("providers", ["fake", "replicate"]),
])
def test_ids_are_printed_whole_at_80_columns(narrow, command: str, words: list[str]) -> None:
    proc = narrow[command]
    assert proc.returncode in (0, 1), proc.stderr
    assert "…" not in proc.stdout, proc.stdout
    for word in words:
        assert whole_on_a_line(proc.stdout, word), f"`limner {command}` cut {word!r}:\n{proc.stdout}"


@pytest.mark.parametrize(("command", "header", "word"), [
    ("plan", "style", LONG_STYLE),
    ("plan", "model", LONG_MODEL),
    ("providers", "model", LONG_MODEL),
])
def test_other_long_names_fold_but_are_printed_in_full(narrow, command: str, header: str, word: str) -> None:
    assert word in column(narrow[command].stdout, header), narrow[command].stdout


def test_tables_that_fit_stay_within_80_columns(narrow) -> None:
    """Only a table whose ids cannot fit is printed wider than the terminal; the others fold their text columns."""
    for command in ("status", "providers"):
        lines = narrow[command].stdout.splitlines()
        assert lines and max(len(line) for line in lines if "│" in line or "┃" in line) <= 80, narrow[command].stdout


def test_styles_name_never_prints_none(narrow) -> None:
    proc = narrow["style"]
    assert proc.returncode == 0, proc.stderr
    assert "None" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert "provider: (default: fake, unless an entry names one)" in lines
    assert "params: (none)" in lines and any(line.startswith("positive: ") for line in lines)
