"""``up_to_date`` counts the entries not planned that need no work, with ``--id``, ``--all`` and ``--limit`` too."""

from __future__ import annotations

from limner.runner import RunOptions, Selection, build_plan, run_plan


def plan(p, selection: Selection = Selection()):
    project = p.project()
    try:
        return build_plan(project, selection)
    finally:
        project.close()


def publish_all_but_last(p) -> list[str]:
    ids = [e["id"] for e in p.entries()]
    project = p.project()
    try:
        summary = run_plan(project, build_plan(project, Selection(limit=len(ids) - 1)), RunOptions(progress=False))
    finally:
        project.close()
    assert summary.generated == len(ids) - 1
    return ids


def test_up_to_date_with_id_counts_the_entries_left_out(project_dir) -> None:
    ids = publish_all_but_last(project_dir)  # 6 entries, 5 published
    assert plan(project_dir).up_to_date == 5
    missing = plan(project_dir, Selection(ids=(ids[-1],)))
    assert [i.reason for i in missing.items] == ["missing"] and missing.up_to_date == 5
    forced = plan(project_dir, Selection(ids=(ids[0],)))
    assert [i.reason for i in forced.items] == ["forced"] and forced.up_to_date == 4  # the named one is planned
    both = plan(project_dir, Selection(ids=(ids[0], ids[-1])))
    assert len(both.items) == 2 and both.up_to_date == 4


def test_up_to_date_with_all_and_limit(project_dir) -> None:
    publish_all_but_last(project_dir)
    assert plan(project_dir, Selection(all=True)).up_to_date == 0  # every entry planned
    limited = plan(project_dir, Selection(all=True, limit=2))
    assert len(limited.items) == 2 and limited.up_to_date == 3  # 3 published entries past the limit


def test_an_entry_left_out_that_changed_is_not_up_to_date(project_dir) -> None:
    ids = publish_all_but_last(project_dir)
    entries = project_dir.entries()
    entries[1]["title"] = "Changed"
    project_dir.write_catalog(entries)
    assert plan(project_dir, Selection(ids=(ids[-1],))).up_to_date == 4


def test_cli_plan_and_generate_with_id(project_dir) -> None:
    ids = publish_all_but_last(project_dir)
    proc = project_dir.run("plan", "--id", ids[-1])
    assert "6 entries in the catalogue: 1 to generate, 5 up to date." in proc.stdout, proc.stdout + proc.stderr
    data = project_dir.run_json("plan", "--id", ids[0])
    assert (data["planned"], data["up_to_date"]) == (1, 4)
    summary = project_dir.run_json("generate", "--id", ids[-1], "--no-progress")
    assert (summary["generated"], summary["skipped"]) == (1, 5)


def test_an_entry_left_out_that_awaits_review_counts_as_it_does_in_the_whole_plan(project_dir) -> None:
    """``--id`` counted only published entries it left out: one whose new render awaits review (up to date in
    the whole plan) was not, so `plan --id a` gave 3 where `plan` gave 4, which cli.md says cannot happen."""
    ids = publish_all_but_last(project_dir)
    proc = project_dir.run("review", "regenerate", ids[1], env=project_dir.env(LIMNER_REVIEW_REQUIRED="true"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    project = project_dir.project()
    try:
        assert project.repo.entry_statuses()[ids[1]].state == "awaiting_review"
    finally:
        project.close()
    whole = plan(project_dir)
    assert whole.up_to_date == 5 and [i.entry.id for i in whole.items] == [ids[-1]]
    assert plan(project_dir, Selection(ids=(ids[-1],))).up_to_date == 5
    assert plan(project_dir, Selection(ids=(ids[0],))).up_to_date == 4
