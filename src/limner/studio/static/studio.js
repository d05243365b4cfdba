// Limner review studio: keyboard review and actions through the JSON API, no framework, no build step.
// Grid: j/k move, a approve, r reject (asks a reason), g regenerate (new seed), p pin, x select, o/Enter open.
// Entry page: the same keys act on the focused render; g regenerates the entry. After an action the card
// or the render list is fetched again as an HTML fragment and swapped in: no page reload.
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const page = document.body.dataset.page;
  const toastBox = document.getElementById("toast");
  let toastTimer = null;

  function toast(text, isError) {
    toastBox.textContent = text;
    toastBox.className = isError ? "show error" : "show";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastBox.className = ""; }, isError ? 6000 : 2500);
  }

  async function api(method, url, body) {
    const res = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : res.statusText;
      throw new Error(`${res.status}: ${detail}`);
    }
    return data;
  }

  async function fragment(url) {
    const res = await fetch(url, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`${res.status} ${url}`);
    const tpl = document.createElement("template");
    tpl.innerHTML = (await res.text()).trim();
    return tpl.content;
  }

  async function pollJob(jobId, onStatus) {
    for (;;) {
      const job = await api("GET", `/api/jobs/${encodeURIComponent(jobId)}`);
      onStatus(job);
      if (job.status === "done" || job.status === "failed") return job;
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  async function decide(kind, renderId, entryLabel) {
    if (!renderId) { toast(`${entryLabel}: no render to ${kind}`, true); return false; }
    let body = {};
    if (kind === "reject") {
      const note = window.prompt(`Why reject render ${renderId} of ${entryLabel}?`);
      if (note === null) return false;
      if (!note.trim()) { toast("a rejection needs a reason", true); return false; }
      body = { note };
    }
    const done = await api("POST", `/api/renders/${renderId}/${kind}`, body);
    toast(`render ${renderId}: ${kind === "pin" ? "pinned" : kind + "d"} (${done.entry.state.replace("_", " ")})`);
    return true;
  }

  async function regenerate(entryId, params, statusEl) {
    const job = await api("POST", `/api/entries/${encodeURIComponent(entryId)}/regenerate`, params || {});
    const show = (j) => {
      const text = `regenerating ${entryId}: ${j.status}${j.error ? " — " + j.error : ""}`;
      if (statusEl) statusEl.textContent = text;
      toast(text, j.status === "failed");
    };
    show(job);
    const finished = await pollJob(job.job, show);
    document.body.dataset.lastJob = finished.status;
    return finished;
  }

  function typing(ev) {
    const t = ev.target;
    return ev.ctrlKey || ev.metaKey || ev.altKey || (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)));
  }

  function fail(err) { toast(String(err.message || err), true); }

  // ------------------------------------------------------------------ the grid
  function initGrid() {
    let cur = 0;
    const cards = () => [...document.querySelectorAll("#grid .card")];
    const bulk = document.getElementById("bulk-approve");
    const countEl = document.getElementById("selected-count");

    function focus(i) {
      const all = cards();
      if (!all.length) return;
      cur = Math.max(0, Math.min(i, all.length - 1));
      all.forEach((c, n) => c.classList.toggle("current", n === cur));
      all[cur].scrollIntoView({ block: "nearest" });
    }

    function selection() { return cards().filter((c) => c.querySelector(".select:checked")); }
    function updateBulk() {
      const n = selection().length;
      countEl.textContent = String(n);
      bulk.disabled = n === 0;
    }

    async function refreshCard(entryId) {
      const old = document.getElementById(`card-${entryId}`);
      const frag = await fragment(`/fragments/card/${encodeURIComponent(entryId)}`);
      const fresh = frag.firstElementChild;
      if (old && fresh) {
        const wasCurrent = old.classList.contains("current");
        old.replaceWith(fresh);
        if (wasCurrent) fresh.classList.add("current");
      }
      updateBulk();
    }

    document.getElementById("grid").addEventListener("change", (ev) => {
      if (ev.target.classList.contains("select")) updateBulk();
    });
    bulk.addEventListener("click", async () => {
      const picked = selection();
      const ids = picked.map((c) => Number(c.dataset.render)).filter(Boolean);
      try {
        const res = await api("POST", "/api/renders/approve", { ids });
        toast(`approved ${res.approved.length}${res.errors.length ? `, ${res.errors.length} refused` : ""}`, res.errors.length > 0);
        for (const c of picked) await refreshCard(c.dataset.entry);
      } catch (err) { fail(err); }
    });
    document.getElementById("grid").addEventListener("click", (ev) => {
      const card = ev.target.closest(".card");
      if (card && !ev.target.closest("a, input, label")) focus(cards().indexOf(card));
    });

    document.addEventListener("keydown", async (ev) => {
      if (typing(ev) || !["j", "k", "o", "Enter", "x", "a", "r", "p", "g"].includes(ev.key)) return;
      ev.preventDefault();
      const all = cards();
      const card = all[cur];
      switch (ev.key) {
        case "j": focus(cur + 1); break;
        case "k": focus(cur - 1); break;
        case "o": case "Enter": if (card) window.location.href = `/entries/${encodeURIComponent(card.dataset.entry)}`; break;
        case "x": if (card) { const box = card.querySelector(".select"); if (!box.disabled) { box.checked = !box.checked; updateBulk(); } } break;
        case "a": case "r": case "p": {
          if (!card) return;
          const kind = { a: "approve", r: "reject", p: "pin" }[ev.key];
          try {
            if (await decide(kind, Number(card.dataset.render), card.dataset.entry)) await refreshCard(card.dataset.entry);
          } catch (err) { fail(err); }
          break;
        }
        case "g": {
          if (!card) return;
          try {
            await regenerate(card.dataset.entry, {}, null);
            await refreshCard(card.dataset.entry);
          } catch (err) { fail(err); }
          break;
        }
      }
    });
    focus(0);
  }

  // ------------------------------------------------------------------ an entry
  function initEntry() {
    const box = document.getElementById("entry");
    const entryId = box.dataset.entry;
    const statusEl = document.getElementById("job-status");
    let cur = 0;
    const items = () => [...box.querySelectorAll(".render[data-render]")];

    function focus(i) {
      const all = items();
      if (!all.length) return;
      cur = Math.max(0, Math.min(i, all.length - 1));
      all.forEach((r, n) => r.classList.toggle("current", n === cur));
      all[cur].scrollIntoView({ block: "nearest" });
    }

    async function refresh() {
      const frag = await fragment(`/fragments/renders/${encodeURIComponent(entryId)}`);
      box.replaceChildren(frag);
      focus(cur);
    }

    async function act(kind, renderId) {
      try {
        if (await decide(kind, renderId, entryId)) await refresh();
      } catch (err) { fail(err); }
    }

    async function regen(params) {
      try {
        const job = await regenerate(entryId, params, statusEl);
        cur = 0;
        await refresh();
        return job;
      } catch (err) { fail(err); return null; }
    }

    box.addEventListener("click", (ev) => {
      const btn = ev.target.closest("button[data-action]");
      if (btn) { act(btn.dataset.action, Number(btn.dataset.render)); return; }
      const li = ev.target.closest(".render");
      if (li && !ev.target.closest("input, label, a")) focus(items().indexOf(li));
    });
    box.addEventListener("change", (ev) => {
      if (!ev.target.classList.contains("compare-pick")) return;
      const picked = [...box.querySelectorAll(".compare-pick:checked")].map((c) => c.value);
      if (picked.length === 2) window.location.href = `?compare=${picked.join(",")}#compare`;
    });

    const form = document.getElementById("override-form");
    function formParams() {
      const data = new FormData(form);
      const out = {};
      for (const name of ["prompt", "negative_extra", "style"]) out[name] = (data.get(name) || "").trim() || null;
      const seed = (data.get("seed") || "").trim();
      out.seed = seed === "" ? null : Number(seed);
      return out;
    }
    form.addEventListener("click", async (ev) => {
      const btn = ev.target.closest("button[data-action]");
      if (!btn) return;
      try {
        switch (btn.dataset.action) {
          case "save-override":
            await api("POST", `/api/entries/${encodeURIComponent(entryId)}/override`, formParams());
            toast("override saved: the entry is stale until regenerated");
            await refresh();
            break;
          case "clear-override":
            await api("POST", `/api/entries/${encodeURIComponent(entryId)}/override/clear`);
            toast("override cleared");
            form.reset();
            await refresh();
            break;
          case "regenerate-with": await regen(formParams()); break;
          case "regenerate": await regen({}); break;
        }
      } catch (err) { fail(err); }
    });

    document.addEventListener("keydown", async (ev) => {
      if (typing(ev) || !["j", "k", "a", "r", "p", "g"].includes(ev.key)) return;
      ev.preventDefault();
      const li = items()[cur];
      switch (ev.key) {
        case "j": focus(cur + 1); break;
        case "k": focus(cur - 1); break;
        case "a": case "r": case "p":
          if (li) await act({ a: "approve", r: "reject", p: "pin" }[ev.key], Number(li.dataset.render));
          break;
        case "g": await regen({}); break;
      }
    });
    focus(0);
  }

  if (page === "grid") initGrid();
  else if (page === "entry") initEntry();
})();
