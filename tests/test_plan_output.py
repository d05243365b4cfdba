"""What ``plan`` and ``generate`` print: money that never reads as $0.00 nor rounds a budget up, and no
half-printed plan before an error."""

from __future__ import annotations

import pytest

from limner.cli.commands.plan import usd


@pytest.mark.parametrize(("amount", "shown"), [
    (0, "$0.00"), (0.003, "$0.0030"), (0.0030000000000001, "$0.0030"), (0.025, "$0.025"), (0.00014, "$0.00014"),
    (0.606, "$0.61"), (0.36, "$0.36"), (5, "$5.00"), (1234.5, "$1234.50"),
])
def test_an_estimate_never_reads_as_zero(amount: float, shown: str) -> None:
    assert usd(amount) == shown


@pytest.mark.parametrize(("amount", "shown"), [
    (0.025, "$0.025"), (5, "$5.00"), (1.005, "$1.005"), (0.1, "$0.10"), (2.5, "$2.50"), (0, "$0.00"),
])
def test_a_budget_is_shown_as_given(amount: float, shown: str) -> None:
    assert usd(amount, exact=True) == shown


def test_plan_of_a_cheap_provider_shows_its_cost(make_project_dir) -> None:
    p = make_project_dir(1, extra="price_usd = 0.003\n")
    proc = p.run("plan")
    assert proc.returncode == 0, proc.stderr
    assert "$0.0030" in proc.stdout  # the row
    assert "Estimated cost: $0.0030 (fake: 1)" in proc.stdout, proc.stdout


def test_generate_names_the_budget_as_given(make_project_dir) -> None:
    p = make_project_dir(6, extra="price_usd = 0.01\n")
    proc = p.run("generate", "--budget", "0.025", "--no-progress")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Budget of $0.025 reached" in proc.stderr, proc.stderr


@pytest.mark.parametrize("args", [("plan",), ("generate", "--dry-run")])
def test_a_template_that_cannot_render_fails_before_any_output(project_dir, args: tuple[str, ...]) -> None:
    project_dir.write_config('[project]\ndefault_style = "house"\n[styles.house]\npositive = "{{ title.foo() }}"\n')
    proc = project_dir.run(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == "" and "cannot render the positive template" in proc.stderr


def test_a_template_reading_a_mistyped_field_stops_before_any_call(project_dir) -> None:
    """``{{ descripton }}`` rendered as empty text, silently, at every verbosity: every prompt lost its
    description, and the calls were paid for. A name no entry has, one edit away from a field entries do
    have, is now a style error before anything runs; a name close to none is a warning."""
    project_dir.write_config('[project]\ndefault_style = "house"\n[styles.house]\n'
                             'positive = "{{ title }}: {{ descripton }}"\n')
    for args in (("plan",), ("generate",)):
        proc = project_dir.run(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "the positive template reads 'descripton', which no entry of the catalogue has (did you mean " \
               "'description'?)" in proc.stderr
    assert project_dir.calls() == [] and not (project_dir.root / ".limner").exists()
    project_dir.write_config('[project]\ndefault_style = "house"\n[styles.house]\npositive = "{{ title }} {{ mood }}"\n')
    proc = project_dir.run("plan")
    said = " ".join(proc.stderr.split())  # the log handler wraps long lines at the terminal's width
    assert proc.returncode == 0 and "reads 'mood', which no entry of the catalogue has" in said
    entries = project_dir.entries()
    entries[0]["mood"] = "calm"  # an extra field one entry has: a name of the catalogue, nothing to say
    project_dir.write_catalog(entries)
    proc = project_dir.run("plan")
    assert proc.returncode == 0 and "mood" not in proc.stderr


def test_names_a_template_sets_itself_are_not_read_from_entries(project_dir) -> None:
    """Jinja counts a name set inside an ``if`` or a loop as read from outside; the check of template names
    took ``{% set eras = ... %}`` for a typo of ``era`` and refused a template that renders well."""
    project_dir.write_config(
        '[project]\ndefault_style = "house"\n[styles.house]\npositive = """{% if era %}{% set eras = era ~ " era, " %}'
        '{% else %}{% set eras = "" %}{% endif %}{% for t in tags %}{% set tg = t %}{% endfor %}'
        '{% macro m(ttle) %}{{ ttle }}{% endmacro %}Illustration of {{ m(title) }}, {{ eras }}warm light."""\n')
    proc = project_dir.run("plan")
    assert proc.returncode == 0, proc.stderr
    assert "which no entry of the catalogue has" not in proc.stderr
