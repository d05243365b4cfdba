"""The publish gate and review decisions (approve, reject, pin, overrides), in process on the fake provider."""

from __future__ import annotations

import json

import pytest

from limner.db.models import Render
from limner.db.review import ReviewConflict, ReviewError, ReviewErrorKind, ReviewInvalid, ReviewNotFound
from limner.runner import RunOptions, Selection, build_plan, run_plan
from limner.sync import sync_project
from test_db_postgres import pg_url  # noqa: F401  (fixture)


def generate(p, selection=Selection(), **overrides):
    project = p.project(**overrides)
    try:
        return run_plan(project, build_plan(project, selection), RunOptions(progress=False))
    finally:
        project.close()


def sync(p, **overrides) -> dict:
    project = p.project(**overrides)
    try:
        sync_project(project)
        return json.loads((project.settings.path(project.settings.sync.manifest)).read_text())["entries"]
    finally:
        project.close()


def with_project(p, fn, **overrides):
    project = p.project(**overrides)
    try:
        return fn(project)
    finally:
        project.close()


def renders_of(project, entry_id: str) -> list[Render]:
    return project.reviews.renders(entry_id)


GATE = {"review": {"required": True}}


def run_holding(p, entry_id: str = "event-000", **popen):  # type: ignore[no-untyped-def]
    """A `limner generate` process started and waited for until it has claimed ``entry_id`` (its provider set slow
    enough by the caller to keep it there)."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-m", "limner", "--config", str(p.config), "generate", "--no-progress",
                               *(["--json"] if popen.get("stdout") == subprocess.PIPE else [])],
                              cwd=p.root, env=p.env(), **popen)
    deadline = time.monotonic() + 30
    while with_project(p, lambda project: project.reviews.entry(entry_id)).claimed_by is None:
        if time.monotonic() >= deadline or holder.poll() is not None:
            holder.kill()
            raise AssertionError("the run never took the entry")
        time.sleep(0.1)
    return holder


def test_with_the_gate_nothing_is_published_until_approved_then_exactly_the_approved(make_project_dir):
    p = make_project_dir(4)
    summary = generate(p, **GATE)
    assert summary.generated == 4 and summary.failed == 0
    assert sync(p, **GATE) == {}  # nothing approved yet
    assert generate(p, **GATE).planned == 0  # renders awaiting review are not made again
    assert len(p.calls()) == 4

    def approve_two(project):
        for entry_id in ("event-001", "event-003"):
            project.reviews.approve(renders_of(project, entry_id)[0].id, note="looks right", actor="tester")
        return project.reviews.states()
    states = with_project(p, approve_two, **GATE)
    assert states == {"event-000": "awaiting_review", "event-001": "published", "event-002": "awaiting_review",
                      "event-003": "published"}
    assert sorted(sync(p, **GATE)) == ["event-001", "event-003"]
    decisions = with_project(p, lambda project: project.reviews.decisions("event-001"))
    assert [(d.decision, d.note, d.actor) for d in decisions] == [("approved", "looks right", "tester")]


def test_an_entry_keeps_its_approved_image_until_a_new_one_is_approved(make_project_dir):
    p = make_project_dir(1)
    generate(p)  # published without the gate
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=777))
    generate(p, **GATE)
    assert len(p.calls()) == 2
    manifest = sync(p, **GATE)
    with_project(p, lambda project: None)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.state == "awaiting_review" and entry.published_render_id == first
    assert list(manifest) == ["event-000"]  # still the first image
    newest = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    assert newest != first
    with_project(p, lambda project: project.reviews.approve(newest), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.state == "published" and entry.published_render_id == newest
    assert generate(p, **GATE).planned == 0


def test_a_rejected_render_is_held_until_a_person_regenerates_it(make_project_dir):
    p = make_project_dir(2)
    generate(p, **GATE)
    render = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with pytest.raises(ReviewError, match="needs a reason"):
        with_project(p, lambda project: project.reviews.reject(render, note=" "))
    with_project(p, lambda project: project.reviews.reject(render, note="anachronistic clothing"))
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.state == "failed" and not entry.retryable and "anachronistic" in entry.last_error
    assert generate(p, **GATE).planned == 0  # held: not regenerated by itself
    assert len(p.calls()) == 2

    # the person asks for another try with a prompt of their own and extra negative terms
    with_project(p, lambda project: project.reviews.set_override(
        "event-000", prompt="A quiet harbour at dawn, oil painting", negative_extra="modern clothing"))
    plan = with_project(p, lambda project: build_plan(project, Selection()), **GATE)
    assert [i.entry.id for i in plan.items] == ["event-000"]
    assert plan.items[0].spec.prompt == "A quiet harbour at dawn, oil painting"
    assert plan.items[0].spec.negative_prompt.endswith("modern clothing")
    generate(p, **GATE)
    assert p.calls()[-1]["id"] == "event-000" and len(p.calls()) == 3
    newest = with_project(p, lambda project: renders_of(project, "event-000")[0])
    assert newest.review == "awaiting" and newest.prompt == "A quiet harbour at dawn, oil painting"


def test_rejecting_the_published_image_falls_back_to_the_previous_one(make_project_dir):
    p = make_project_dir(1)
    generate(p)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=99))
    generate(p)
    second = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    assert second != first
    with_project(p, lambda project: project.reviews.reject(second, note="garbled text"))
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first
    assert list(sync(p)) == ["event-000"]


def test_pinning_an_earlier_render_publishes_it_and_keeps_it(make_project_dir):
    p = make_project_dir(1)
    generate(p)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    generate(p)
    with_project(p, lambda project: project.reviews.pin(first, note="the first was better"))
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first and entry.pinned
    assert generate(p).planned == 0  # pinned: up to date, although the override changed its spec
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=6))  # a new request unpins
    assert generate(p).generated == 1
    with pytest.raises(ReviewError, match="no render"):
        with_project(p, lambda project: project.reviews.pin(10_000))


def test_an_override_is_part_of_the_fingerprint(make_project_dir):
    p = make_project_dir(1)
    generate(p)
    fp = with_project(p, lambda project: build_plan(project, Selection(all=True)).items[0].fingerprint)
    with_project(p, lambda project: project.reviews.set_override("event-000", negative_extra="text, watermark"))
    plan = with_project(p, lambda project: build_plan(project, Selection()))
    assert [i.reason for i in plan.items] == ["stale"] and plan.items[0].fingerprint != fp
    with_project(p, lambda project: project.reviews.clear_override("event-000"))
    assert with_project(p, lambda project: build_plan(project, Selection())).items == []


def test_regenerate_stores_the_change_and_runs_the_unit_of_work_now(make_project_dir):
    from limner.review import regenerate

    p = make_project_dir(2)
    generate(p, **GATE)
    summary = with_project(p, lambda project: regenerate(project, "event-001", seed=4242), **GATE)
    assert summary.generated == 1 and summary.provider_calls == 1
    assert p.calls()[-1] == {**p.calls()[-1], "id": "event-001", "seed": 4242}
    newest = with_project(p, lambda project: renders_of(project, "event-001")[0])
    assert newest.seed == 4242 and newest.review == "awaiting"
    with pytest.raises(ReviewError, match="no style 'nope'"):
        with_project(p, lambda project: regenerate(project, "event-001", style="nope"))


def test_a_regeneration_keeps_within_the_projects_spend_cap(make_project_dir):
    from limner.review import regenerate

    p = make_project_dir(1, extra="price_usd = 0.01\n")
    generate(p)
    calls = len(p.calls())
    p.config.write_text(p.config.read_text().replace("[generate]\n", "[generate]\nbudget_usd = 0.005\n"))
    summary = with_project(p, lambda project: regenerate(project, "event-000", seed=7))
    assert summary.budget_stopped and summary.provider_calls == 0 and len(p.calls()) == calls


def test_the_cli_gate_approve_two_then_sync_publishes_exactly_those(make_project_dir):
    p = make_project_dir(3, extra="")
    p.config.write_text(p.config.read_text() + "\n[review]\nrequired = true\n")
    assert p.run("generate", "--no-progress").returncode == 0
    assert p.run_json("sync")["written"] == 0
    awaiting = p.run_json("review", "list")["renders"]
    assert sorted(r["entry_id"] for r in awaiting) == ["event-000", "event-001", "event-002"]
    chosen = [r["render_id"] for r in awaiting if r["entry_id"] in ("event-000", "event-002")]
    for action in (["approve"], ["reject", "--note", "no"], ["pin"]):  # one unknown id: none is decided
        partial = p.run("review", *action[:1], str(chosen[0]), "99999", *action[1:])
        assert partial.returncode == 2 and "no render 99999" in partial.stderr and partial.stdout == ""
        assert sorted(r["render_id"] for r in p.run_json("review", "list")["renders"]) == sorted(
            r["render_id"] for r in awaiting)
    done = p.run_json("review", "approve", *map(str, chosen), "--note", "checked", "--actor", "ci")["decisions"]
    assert [d["entry_state"] for d in done] == ["published", "published"]
    rejected = next(r["render_id"] for r in awaiting if r["entry_id"] == "event-001")
    refused = p.run("review", "reject", str(rejected))
    assert refused.returncode == 2 and "--note" in refused.stderr  # a reason is required
    assert p.run_json("review", "reject", str(rejected), "--note", "wrong century")["decisions"][0]["entry_state"] == "failed"
    sync = p.run_json("sync")
    assert sync["written"] == 2
    manifest = json.loads((p.root / "frontend" / "src" / "data" / "limner-manifest.json").read_text())
    assert sorted(manifest["entries"]) == ["event-000", "event-002"]
    missing = p.run("review", "approve", "99999")
    assert missing.returncode == 2 and "no render 99999" in missing.stderr

    override = p.run_json("review", "override", "event-001", "--seed", "31", "--negative", "modern dress")
    assert override["override"] == {"prompt": None, "negative_extra": "modern dress", "seed": 31, "style": None}
    regen = p.run_json("review", "regenerate", "event-001", "--new-seed")
    assert regen["summary"]["generated"] == 1 and regen["render"]["review"] == "awaiting"
    assert regen["render"]["seed"] != 31


def test_every_refusal_has_a_declared_kind(make_project_dir):
    from limner.review import regenerate, set_override

    p = make_project_dir(2)
    generate(p, Selection(ids=("event-000",)), **GATE)
    render = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    refusals = [
        (lambda project: project.reviews.approve(10_000), ReviewNotFound, "no render 10000"),
        (lambda project: project.reviews.reject(10_000, note="x"), ReviewNotFound, "no render 10000"),
        (lambda project: project.reviews.pin(10_000), ReviewNotFound, "no render 10000"),
        (lambda project: project.reviews.set_override("event-001", seed=1), ReviewNotFound, "no entry 'event-001' in the database"),
        (lambda project: set_override(project, "nope", seed=1), ReviewNotFound, "no entry 'nope' in the catalogue"),
        (lambda project: regenerate(project, "nope"), ReviewNotFound, "no entry 'nope' in the catalogue"),
        (lambda project: project.reviews.reject(render, note=" "), ReviewInvalid, "needs a reason"),
        (lambda project: regenerate(project, "event-000", style="nope"), ReviewInvalid, "no style 'nope'"),
        (lambda project: set_override(project, "event-001", style="nope"), ReviewInvalid, "no style 'nope'"),
    ]
    for action, kind, words in refusals:
        with pytest.raises(kind, match=words) as info:
            with_project(p, action, **GATE)
        assert info.value.kind is {ReviewNotFound: ReviewErrorKind.not_found, ReviewInvalid: ReviewErrorKind.invalid}[kind]
        assert info.value.exit_code == 2
    with_project(p, lambda project: project.reviews.reject(render, note="wrong century"))
    with pytest.raises(ReviewConflict, match="was rejected; approve it first") as info:
        with_project(p, lambda project: project.reviews.pin(render))
    assert info.value.kind is ReviewErrorKind.conflict
    assert with_project(p, lambda project: project.reviews.entry("nope")) is None
    assert len(p.calls()) == 1  # no refusal called the provider
    with pytest.raises(TypeError, match="has no kind"):
        ReviewError("a refusal without a kind")


def test_no_review_error_is_raised_without_its_kind():
    """Every raise site names the kind (the studio maps the kind to 404, 409 or 422, never the message)."""
    import ast
    from pathlib import Path

    import limner

    root = Path(limner.__file__).parent
    bare = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if name == "ReviewError":
                    bare.append(f"{path.relative_to(root)}:{node.lineno}")
    assert bare == []


def test_the_cli_overrides_and_regenerates_an_entry_never_generated(make_project_dir):
    p = make_project_dir(3, extra="")
    p.config.write_text(p.config.read_text() + "\n[review]\nrequired = true\n")
    assert p.run("generate", "--no-progress", "--id", "event-000").returncode == 0
    assert with_project(p, lambda project: project.reviews.entry("event-001")) is None

    override = p.run_json("review", "override", "event-001", "--seed", "3", "--negative", "modern dress")
    assert override == {"entry_id": "event-001",
                        "override": {"prompt": None, "negative_extra": "modern dress", "seed": 3, "style": None}}
    status = p.run_json("status")["by_state"]
    assert (status["missing"], status["queued"], status["awaiting_review"]) == (2, 0, 1)  # nothing queued by it

    regen = p.run_json("review", "regenerate", "event-002", "--seed", "9")
    assert regen["summary"]["generated"] == 1
    assert (regen["render"]["entry_id"], regen["render"]["seed"], regen["render"]["review"]) == ("event-002", 9, "awaiting")
    assert p.run_json("generate", "--no-progress")["generated"] == 1  # event-001, with its override
    assert p.calls()[-1]["id"] == "event-001" and p.calls()[-1]["seed"] == 3
    assert p.run_json("review", "override", "event-002", "--clear")["override"] is None

    for args in (("override", "nope", "--seed", "1"), ("override", "nope", "--clear"), ("regenerate", "nope")):
        refused = p.run("review", *args)
        assert refused.returncode == 2 and "no entry 'nope' in the catalogue" in refused.stderr, (args, refused.stderr)
    typo = p.run("review", "regenerate", "event-01")
    assert typo.returncode == 2 and "did you mean" in typo.stderr
    assert len(p.calls()) == 3

    # with no change asked, a new seed each time: the same one would pay for the same image again
    once = p.run_json("review", "regenerate", "event-002")
    again = p.run_json("review", "regenerate", "event-002")
    assert once["summary"]["generated"] == again["summary"]["generated"] == 1
    assert again["render"]["seed"] != once["render"]["seed"] and p.calls()[-1]["seed"] == again["render"]["seed"]


def test_an_approval_and_a_rejection_at_once_never_leave_a_rejected_render_published(make_project_dir, request):
    """Two tabs on PostgreSQL: one approved a render while the other rejected it. Each read the entry before the
    other committed, so the rejection, committed last, marked the render rejected and left it published: the
    rejected image was in the manifest. Decisions on one entry now take its row in turn."""
    import threading

    from limner.db.review import Reviews

    url = request.getfixturevalue("pg_url")
    p = make_project_dir(1, extra=f'\n[database]\nurl = "{url}"\n[review]\nrequired = true\n')
    generate(p)
    render = with_project(p, lambda project: renders_of(project, "event-000")[0].id)

    original = Reviews._load
    approve_read, reject_read, approved = threading.Event(), threading.Event(), threading.Event()

    def load(s, render_id):  # the rejection reads, then waits for the approval to commit; the approval does not wait long
        found = original(s, render_id)
        if threading.current_thread().name == "reject":
            reject_read.set()
            approved.wait(5)
        else:
            approve_read.set()
            reject_read.wait(1)
        return found

    Reviews._load = staticmethod(load)  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def act(fn):
        def run():
            try:
                with_project(p, fn)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                approved.set()
        return run

    try:
        approving = threading.Thread(target=act(lambda project: project.reviews.approve(render)), name="approve")
        rejecting = threading.Thread(target=act(lambda project: project.reviews.reject(render, note="wrong century")),
                                     name="reject")
        approving.start()
        approve_read.wait(5)
        rejecting.start()
        approving.join(20)
        rejecting.join(20)
    finally:
        Reviews._load = staticmethod(original)  # type: ignore[method-assign]
    assert not errors, errors
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    shown = with_project(p, lambda project: renders_of(project, "event-000")[0])
    assert shown.review == "rejected"  # the rejection came last
    assert entry.published_render_id is None and entry.state == "failed", (entry.published_render_id, entry.state)
    assert sync(p) == {}


def test_a_decision_on_another_render_leaves_the_entry_waiting_on_its_newer_render(make_project_dir):
    """Rejecting the published image fell back to an earlier one and marked the entry published: the newer render
    awaiting review (the one the grid shows, `a` acts on) was then approved but never published, and the next run
    took it up again as stale and set it back to awaiting review. The same after approving an older render."""
    p = make_project_dir(1)
    generate(p)  # without the gate: published as made
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    generate(p)
    second = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=6))
    generate(p, **GATE)
    third = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    assert len({first, second, third}) == 3 and len(p.calls()) == 3

    with_project(p, lambda project: project.reviews.reject(second, note="wrong century"), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first and entry.state == "awaiting_review"  # still waits on the third
    assert generate(p, **GATE).planned == 0
    with_project(p, lambda project: project.reviews.approve(third), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == third and entry.state == "published"
    assert list(sync(p, **GATE)) == ["event-000"] and generate(p, **GATE).planned == 0
    assert len(p.calls()) == 3


def test_approving_an_older_render_keeps_the_entry_waiting_on_the_newer_one(make_project_dir):
    p = make_project_dir(1)
    generate(p, **GATE)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    generate(p, **GATE)
    second = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.approve(first, note="better than nothing"), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first and entry.state == "awaiting_review"
    with_project(p, lambda project: project.reviews.approve(second), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == second and entry.state == "published"
    assert generate(p, **GATE).planned == 0 and len(p.calls()) == 2


def test_regenerating_a_rejected_render_makes_a_new_one_and_never_brings_the_rejected_one_back(make_project_dir):
    """`limner review regenerate ID` (no change asked) of an entry whose render was rejected "resumed" that render:
    no new image, and the rejected render was set back to awaiting review (without the gate, published)."""
    from limner.review import regenerate

    p = make_project_dir(1)
    generate(p, **GATE)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.reject(first, note="wrong century"), **GATE)
    summary = with_project(p, lambda project: regenerate(project, "event-000"), **GATE)
    renders = with_project(p, lambda project: renders_of(project, "event-000"))
    by_id = {r.id: r for r in renders}
    assert by_id[first].review == "rejected"
    assert summary.generated == 1 and summary.resumed == 0 and len(renders) == 2 and len(p.calls()) == 2
    assert renders[0].id != first and renders[0].review == "awaiting"


def test_approving_while_a_run_holds_the_entry_leaves_its_claim_and_nothing_is_paid_twice(make_project_dir):
    """A person approved an earlier render while a run was generating the entry's new spec (the studio's
    regeneration, or `limner generate`): the approval released the run's claim, so a second run took the entry
    and paid for the same spec again (two calls, two identical renders)."""
    import subprocess

    p = make_project_dir(1, extra="price_usd = 0.04\n")
    generate(p, **GATE)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    p.config.write_text(p.config.read_text().replace("price_usd = 0.04\n", "price_usd = 0.04\nlatency_s = 6\n"))
    p.config.write_text(p.config.read_text() + "\n[review]\nrequired = true\n")
    holder = run_holding(p, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        held = with_project(p, lambda project: project.reviews.entry("event-000"))
        with_project(p, lambda project: project.reviews.approve(first, note="the first will do meanwhile"))
        entry = with_project(p, lambda project: project.reviews.entry("event-000"))
        assert entry.published_render_id == first and entry.claimed_by is not None  # still the run's
        # and so are the spec it works on and its state: a failure of the run is recorded against its own spec
        assert (entry.fingerprint, entry.state) == (held.fingerprint, held.state) != (None, "published")
        second = generate(p)  # another run meanwhile: the entry is held
        assert second.provider_calls == 0 and second.elsewhere == 1
    finally:
        out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err
    assert json.loads(out)["generated"] == 1
    assert [c["seed"] for c in p.calls()][1:] == [5]  # one call for the new spec
    newest = with_project(p, lambda project: renders_of(project, "event-000"))
    assert len(newest) == 2 and newest[0].review == "awaiting"
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first and entry.state == "awaiting_review" and entry.claimed_by is None


def pinned_while_a_run_works(make_project_dir):  # type: ignore[no-untyped-def]
    """A published entry whose first render a person pins while an unforced `limner generate` makes its new spec
    (seed 5); (project, the pinned render's id, the run's --json output) once the run has ended."""
    import subprocess

    p = make_project_dir(1)
    generate(p)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    p.config.write_text(p.config.read_text().replace("size = 96\n", "size = 96\nlatency_s = 4\n"))
    holder = run_holding(p, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with_project(p, lambda project: project.reviews.pin(first, note="keep this one"))
    finally:
        out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err
    return p, first, out


def test_a_pin_made_while_a_run_works_on_the_entry_stays_and_the_run_s_image_awaits_review(make_project_dir):
    """A person pinned the entry's image while an unforced run made its new spec (the review gate off): the run then
    published its image over the pin and unpinned it, though a pin holds "until a person regenerates it or a run
    forces it". The pin now stays; the run's image is kept, waiting for a person's decision. A forced run still
    replaces the pin."""

    p, first, out = pinned_while_a_run_works(make_project_dir)
    assert json.loads(out)["provider_calls"] == 1
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert (entry.published_render_id, entry.pinned) == (first, True)
    renders = with_project(p, lambda project: renders_of(project, "event-000"))
    assert len(renders) == 2 and renders[0].review == "awaiting" and renders[0].id != first
    assert list(sync(p)) == ["event-000"]
    p.config.write_text(p.config.read_text().replace("latency_s = 4\n", ""))
    assert generate(p).planned == 0 and len(p.calls()) == 2  # pinned: nothing to do, nothing paid
    forced = p.run_json("generate", "--id", "event-000", "--no-progress")
    assert forced["generated"] == 1
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id != first and not entry.pinned


def test_regenerating_an_entry_another_run_holds_says_so_and_keeps_the_change(make_project_dir):
    """`review regenerate` of an entry a running `limner generate` held printed "0 generated ... newest render none"
    and nothing else, exit 0, as if the change had been made. It now says another run holds the entry and that
    the change is stored for the next run."""
    import subprocess

    p = make_project_dir(1)
    generate(p)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    p.config.write_text(p.config.read_text().replace("size = 96\n", "size = 96\nlatency_s = 4\n"))
    holder = run_holding(p, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc = p.run("review", "regenerate", "event-000", "--seed", "9")
    finally:
        holder.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "0 generated" in proc.stdout and "another run is generating event-000" in proc.stderr
    assert with_project(p, lambda project: project.reviews.override("event-000")).seed == 9
    p.config.write_text(p.config.read_text().replace("latency_s = 4\n", ""))
    assert generate(p).generated == 1 and p.calls()[-1]["seed"] == 9


def test_a_pinned_entry_whose_newer_render_awaits_review_is_not_generated_again_when_its_spec_changes(make_project_dir):
    """A pin holds "until a person regenerates it or a run forces it": an unforced run after a catalogue edit made
    a pinned entry whose newer render awaited review again (a paid call), which a pinned entry without one is not.
    Both are up to date now; a forced run still makes it."""
    from projects import make_entries

    p, _first, _out = pinned_while_a_run_works(make_project_dir)
    p.config.write_text(p.config.read_text().replace("latency_s = 4\n", ""))
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert (entry.state, entry.pinned) == ("awaiting_review", True)
    edited = make_entries(1)
    edited[0]["description"] = "Edited after the pin."
    p.write_catalog(edited)
    assert generate(p).planned == 0 and len(p.calls()) == 2  # pinned: nothing to do, nothing paid
    assert p.run_json("plan", "--id", "event-000")["planned"] == 1  # named: forced
    assert p.run_json("generate", "--id", "event-000", "--no-progress")["generated"] == 1


def test_approving_an_older_render_of_a_held_entry_publishes_it_and_keeps_the_entry_held(make_project_dir):
    """The newer render was rejected (the entry held), then an older one approved and published: the entry was
    marked published, its rejected spec stale, and the next run made that spec again (resuming the rejected render,
    or paying for it once more) although nobody asked."""
    p = make_project_dir(1)
    generate(p, **GATE)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    generate(p, **GATE)
    second = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.reject(second, note="wrong century"), **GATE)
    with_project(p, lambda project: project.reviews.approve(first, note="the first will do"), **GATE)
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.published_render_id == first and entry.state == "failed" and not entry.retryable
    assert list(sync(p, **GATE)) == ["event-000"]
    assert generate(p, **GATE).planned == 0 and len(p.calls()) == 2  # held until a person asks
    renders = with_project(p, lambda project: renders_of(project, "event-000"))
    assert [(r.id, r.review) for r in renders] == [(second, "rejected"), (first, "approved")]


def test_regenerate_without_changes_keeps_a_new_entry_s_seed_and_names_no_render_when_it_made_none(make_project_dir):
    """`review regenerate ID` with no change draws a new seed only for an entry that has an image (the same seed
    would pay for the same one); an entry never generated keeps its own seed, with no override stored. A run that
    made nothing answered the entry's newest render, a rejected one included, which a script would approve."""
    p = make_project_dir(2)
    first = p.run_json("review", "regenerate", "event-000")
    assert first["summary"]["generated"] == 1
    assert (p.run_json("review", "override", "event-000")["override"] or {}).get("seed") is None
    p.run_json("review", "reject", str(first["render"]["render_id"]), "--note", "wrong century")
    p.config.write_text(p.config.read_text().replace("size = 96\n", 'size = 96\nrefuse_ids = ["event-000"]\n'))
    refused = p.run("review", "regenerate", "event-000", "--json")
    assert refused.returncode != 0 and json.loads(refused.stdout)["render"] is None


def test_rejecting_the_only_image_while_a_run_holds_the_entry_leaves_it_to_the_run(make_project_dir):
    """The published image, the entry's only one, was rejected while a run made the entry's new spec: the entry was
    set failed and held. Killed then, the run left it so, and the next run left it alone: its paid call was never
    taken up again. The entry now keeps the run's state; killed, the run's entry goes back to the queue."""
    import signal
    import subprocess

    p = make_project_dir(1)
    generate(p)
    first = with_project(p, lambda project: renders_of(project, "event-000")[0].id)
    with_project(p, lambda project: project.reviews.set_override("event-000", seed=5))
    p.config.write_text(p.config.read_text().replace("size = 96\n", "size = 96\nlatency_s = 30\n"))
    holder = run_holding(p, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        held = with_project(p, lambda project: project.reviews.entry("event-000"))
        with_project(p, lambda project: project.reviews.reject(first, note="wrong century"))
        entry = with_project(p, lambda project: project.reviews.entry("event-000"))
        assert entry.published_render_id is None and (entry.state, entry.fingerprint) == (held.state, held.fingerprint)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    p.config.write_text(p.config.read_text().replace("latency_s = 30\n", ""))
    again = generate(p)
    assert again.generated == 1
    entry = with_project(p, lambda project: project.reviews.entry("event-000"))
    assert entry.state == "published" and entry.published_render_id != first
