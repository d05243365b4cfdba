"""The npm package ``limner-images`` (clients/js): its quality gates, its types against the manifest
schema, and the packed tarball installed into a fresh TypeScript project that reads a manifest made by
``limner sync``."""

from __future__ import annotations

import json
import textwrap

import jsonschema
import pytest

from frontend_tools import JS_PACKAGE, node_tools, prepare_js_package, run
from limner.sync.manifest import MANIFEST_SCHEMA, schema_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def package() -> tuple[str, str]:
    """The package installed (``npm ci``, cached on the lock file) and built (when its sources changed)."""
    node, npm = node_tools()
    prepare_js_package(npm)
    return node, npm


def test_the_shipped_schema_is_the_one_sync_writes():
    shipped = (JS_PACKAGE / "manifest.schema.json").read_text(encoding="utf-8")
    assert shipped == schema_text(), (
        "clients/js/manifest.schema.json is out of date: run\n  .venv/bin/python -c \"from limner.sync.manifest import "
        "schema_text; print(schema_text(), end='')\" > clients/js/manifest.schema.json\nthen `npm run gen:types` in clients/js")


def test_the_test_fixture_is_a_valid_manifest():
    doc = json.loads((JS_PACKAGE / "test" / "fixtures" / "manifest.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(MANIFEST_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)


def test_types_are_generated_from_the_current_schema(package, tmp_path):
    node, npm = package
    run([npm, "run", "check:types"], JS_PACKAGE)
    # and the check does fail when the schema moves on without the types
    schema = json.loads((JS_PACKAGE / "manifest.schema.json").read_text(encoding="utf-8"))
    schema["$defs"]["entry"]["properties"]["new_field"] = {"type": "string"}
    changed = tmp_path / "pkg"
    (changed / "src").mkdir(parents=True)
    (changed / "scripts").mkdir()
    (changed / "manifest.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    (changed / "src" / "manifest.ts").write_bytes((JS_PACKAGE / "src" / "manifest.ts").read_bytes())
    script = changed / "scripts" / "gen-types.mjs"
    script.write_bytes((JS_PACKAGE / "scripts" / "gen-types.mjs").read_bytes())
    (changed / "node_modules").symlink_to(JS_PACKAGE / "node_modules")
    stale = run([node, str(script), "--check"], changed, check=False)
    assert stale.returncode == 1 and "out of date" in stale.stderr


def test_strict_type_check(package):
    node, npm = package
    run([npm, "run", "typecheck"], JS_PACKAGE)


def test_unit_and_server_render_tests(package):
    node, npm = package
    proc = run([node, "--test", "test/"], JS_PACKAGE)
    assert "# fail 0" in proc.stdout and "# pass " in proc.stdout
    passed = int(proc.stdout.split("# pass ")[1].split()[0])
    assert passed >= 16, proc.stdout[-2000:]


def test_packaging(package):
    node, npm = package
    proc = run([npm, "run", "check:pack"], JS_PACKAGE)
    assert "exports and types present" in proc.stdout and "All good" in proc.stdout, proc.stdout


def test_the_tarball_type_checks_in_a_fresh_strict_project_and_reads_a_synced_manifest(package, make_project_dir, tmp_path):
    node, npm = package
    p = make_project_dir(2, extra='[storage]\ncdn_base_url = "https://cdn.example.org/images"\n')
    p.run("generate", check=True)
    p.run("sync", check=True)
    manifest = json.loads((p.root / "frontend/src/data/limner-manifest.json").read_text(encoding="utf-8"))
    assert manifest["base"] is None and manifest["cdn_base"] == "https://cdn.example.org/images/"

    packed = run([npm, "pack", "--pack-destination", str(tmp_path), "--ignore-scripts", "--json"], JS_PACKAGE)
    tarball = tmp_path / json.loads(packed.stdout)[0]["filename"]
    app = tmp_path / "fresh-app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "fresh-app", "private": True, "type": "module"}), encoding="utf-8")
    run([npm, "install", "--no-audit", "--no-fund", "--prefer-offline", str(tarball)], app, timeout=300)
    assert (app / "node_modules/limner-images/dist/index.d.ts").is_file()
    (app / "limner-manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (app / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": True, "resolveJsonModule": True,
        "skipLibCheck": False, "types": [], "lib": ["ES2022", "DOM"], "outDir": "out"}, "files": ["main.ts"]}), encoding="utf-8")
    (app / "main.ts").write_text(textwrap.dedent("""\
        import data from "./limner-manifest.json" with { type: "json" };
        import { asManifest, getImageProps, getImageUrl, getPictureSources, type LimnerEntry, type Mode } from "limner-images";
        import { createLoader } from "limner-images/next";

        const manifest = asManifest(data);
        const first: LimnerEntry | undefined = manifest.entries["event-000"];
        const modes: Mode[] = ["development", "production"];
        const urls: Array<string | undefined> = modes.map((mode) => getImageUrl(manifest, "event-000", { mode }));
        const props = getImageProps(manifest, "event-000", { sizes: "100vw", mode: "production" });
        const width: number | undefined = props?.width;
        const loader = createLoader(manifest, { mode: "production" });
        console.log(JSON.stringify({
          dev: urls[0], prod: urls[1], unknown: getImageUrl(manifest, "no-such-entry", { mode: "production" }) ?? null,
          width, key: first?.image_key, sources: getPictureSources(manifest, "event-000", { mode: "production" }).map((s) => s.type),
          loader: loader({ src: "event-000", width: 50 }),
        }));
        """), encoding="utf-8")
    tsc = str(JS_PACKAGE / "node_modules" / "typescript" / "bin" / "tsc")
    run([node, tsc, "-p", "tsconfig.json", "--strict"], app)
    out = json.loads(run([node, "out/main.js"], app).stdout)
    entry = manifest["entries"]["event-000"]
    assert out["dev"] == "/images/events/event-000.webp"
    assert out["prod"] == "https://cdn.example.org/images/" + entry["image_key"]
    assert out["unknown"] is None and out["width"] == entry["width"] and out["key"] == entry["image_key"]
    assert out["sources"] == ["image/avif", "image/webp", "image/jpeg"]
    assert out["loader"].startswith("https://cdn.example.org/images/variants/")

    # the types are really checked: a wrong mode and a wrong option are compile errors
    (app / "main.ts").write_text('import { getImageUrl, type LimnerManifest } from "limner-images";\n'
                                 'declare const m: LimnerManifest;\n'
                                 'getImageUrl(m, "x", { mode: "staging" });\n'
                                 'const n: number = getImageUrl(m, "x");\n', encoding="utf-8")
    failed = run([node, tsc, "-p", "tsconfig.json", "--strict", "--noEmit"], app, check=False)
    assert failed.returncode != 0 and '"staging"' in failed.stdout and "TS2322" in failed.stdout, failed.stdout
