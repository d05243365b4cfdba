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
