// The game-day console's page: polls /api/state, renders it, sends the facilitator's commands.
// Everything is built with textContent (never innerHTML): names and notes are people's input.
"use strict";
(function () {
  const token = new URLSearchParams(window.location.search).get("token") || "";
  const POLL_MS = 500;
  let state = null;
  let abortArmed = false;
  const drawn = {};  // the last JSON drawn per part: a part redraws only when it changed

  function changed(part, value) {
    const text = JSON.stringify(value);
    if (drawn[part] === text) return false;
    drawn[part] = text;
    return true;
  }
  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function seconds(s) {
    if (s === null || s === undefined) return "-";
    const sign = s < 0 ? "-" : "+";
    const whole = Math.floor(Math.abs(s));
    return sign + Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0") + "." + String(Math.floor((Math.abs(s) % 1) * 10));
  }
  function say(text) { $("message").textContent = text || ""; }

  async function send(command, body) {
    say("");
    try {
      const reply = await fetch("/api/" + command, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Drill-Token": token },
        body: JSON.stringify(body || {}),
      });
      const data = await reply.json();
      if (!reply.ok) say(data.error || ("refused: " + reply.status));
      await poll();
      return reply.ok;
    } catch (err) {
      say("the console did not answer: " + err);
      return false;
    }
  }

  function renderPhases(s) {
    const box = $("phases");
    box.replaceChildren();
    for (const p of s.phases) {
      const length = p.end_s - p.start_s;
      const node = el("div", null, "phase");
      node.style.flexGrow = String(Math.max(length, 1));
      node.dataset.phase = p.name;
      const done = Math.min(Math.max((s.now_s - p.start_s) / length, 0), 1);
      const bar = el("div", null, "bar");
      bar.style.width = (done * 100).toFixed(1) + "%";
      node.append(bar, el("span", p.name + " " + Math.round(length) + " s"));
      if (s.now_s >= p.start_s && s.now_s < p.end_s) node.classList.add("current");
      box.append(node);
    }
    if (!s.phases.length) box.append(el("span", s.status === "waiting" ? "not started" : "starting the stack and the load…"));
  }

  function renderFigures(s) {
    const f = s.figures;
    // The snapshot's instant, for bench/gameday_cost.py's sample-to-screen latency.
    $("figures").dataset.ts = f ? String(f.ts) : "";
    $("error-rate").textContent = f && f.error_rate !== null ? (f.error_rate * 100).toFixed(1) + " %" : "-";
    $("p95").textContent = f && f.p95_ms !== null ? f.p95_ms.toFixed(1) + " ms" : "-";
    $("ttft").textContent = f && f.ttft_p95_ms !== null && f.ttft_p95_ms !== undefined ? f.ttft_p95_ms.toFixed(1) + " ms" : "-";
    $("rps").textContent = f ? f.rps.toFixed(0) + " rps" : "-";
    $("tiers").textContent = f && Object.keys(f.tiers).length
      ? Object.entries(f.tiers).map(([k, v]) => k + " " + (v * 100).toFixed(0) + " %").join(" · ") : "-";
  }

  function renderFaults(s) {
    const body = $("faults");
    body.replaceChildren();
    for (const f of s.faults) {
      const row = el("tr");
      row.dataset.fault = f.name;
      row.append(el("td", f.name + (f.manual ? " (manual)" : "")), el("td", f.type),
        el("td", f.state, "state-" + f.state.split(" ")[0]), el("td", seconds(f.applied_at_s)), el("td", seconds(f.reverted_at_s)));
      const cell = el("td");
      if (s.role === "facilitator" && f.manual && f.can_inject) {
        const button = el("button", "Inject " + f.name);
        button.type = "button";
        button.dataset.inject = f.name;
        button.addEventListener("click", () => send("inject", { fault: f.name }));
        cell.append(button);
      }
      row.append(cell);
      body.append(row);
    }
  }

  function renderPeople(s) {
    const who = $("who");
    const names = s.participants;
    if (who.options.length !== names.length) {
      const chosen = who.value;
      who.replaceChildren(...names.map((n) => { const o = el("option", n); o.value = n; return o; }));
      if (names.includes(chosen)) who.value = chosen;
    }
    const kinds = $("kinds");
    if (!kinds.children.length) {
      s.kinds.forEach((kind, i) => {
        const button = el("button", (i + 1) + " " + kind);
        button.type = "button";
        button.dataset.kind = kind;
        button.addEventListener("click", () => record(kind));
        kinds.append(button);
      });
    }
    const list = $("entries");
    list.replaceChildren(...s.entries.map((e) =>
      el("li", seconds(e.at_s) + "  " + (e.lane ? "[" + e.lane + "] " : "") + e.participant + " " + e.kind + (e.note ? ": " + e.note : ""))));
  }

  async function record(kind) {
    const who = $("who").value;
    if (!who) { say("choose who"); return; }
    if (await send("entry", { participant: who, kind: kind, note: $("note").value })) $("note").value = "";
  }

  function render(s) {
    state = s;
    const facilitator = s.role === "facilitator";
    $("scenario").textContent = s.scenario;
    $("role").textContent = facilitator ? "facilitator" : "observer (read-only)";
    $("status").textContent = s.aborting && s.status !== "finished" ? "aborting: rolling back" : s.status;
    $("status").className = "badge " + s.status;
    $("clock").textContent = s.now_s === null ? "-" : "T" + seconds(s.now_s);
    $("start").hidden = !(facilitator && s.status === "waiting");
    const names = $("participants");
    if (s.status === "waiting" && !names.value && !names.dataset.filled && s.participants.length) {
      names.value = s.participants.join("\n");  // those named on the command line
      names.dataset.filled = "1";
    }
    const replay = s.replay || null;
    $("facilitator").hidden = !(facilitator && s.status === "running" && !replay);
    $("replay").hidden = !(facilitator && replay && s.status !== "waiting");
    if (replay) {
      const speed = $("speed");
      if (!speed.options.length) {
        speed.replaceChildren(...replay.speeds.map((v) => { const o = el("option", v + "x"); o.value = String(v); return o; }));
      }
      if (document.activeElement !== speed) speed.value = String(replay.speed);
      $("replay-source").textContent = (replay.paused ? "paused · " : "playing · ") + "run " + replay.source_run
        + " · tabletop entries go to " + replay.out_dir;
    }
    $("record").hidden = !(facilitator && s.status === "running" && s.participants.length > 0);
    $("hold-left").textContent = s.hold_left_s === null ? "" : s.hold_left_s + " s of holds left";
    if (changed("phases", [s.phases, Math.round((s.now_s || 0) * 2)])) renderPhases(s);
    if (changed("figures", s.figures)) renderFigures(s);
    if (changed("faults", [s.faults, s.role])) renderFaults(s);
    if (changed("people", [s.participants, s.entries])) renderPeople(s);
    if (changed("log", s.log)) $("log").textContent = s.log.join("\n");
    $("result").hidden = s.status !== "finished";
    if (s.status === "finished") {
      $("verdict").textContent = s.verdict
        ? s.verdict.toUpperCase() + " (exit " + s.exit_code + "); run directory " + s.run_dir
        : "ended: " + (s.error || "no result");
    }
  }

  async function poll() {
    try {
      const reply = await fetch("/api/state", { headers: { "X-Drill-Token": token }, cache: "no-store" });
      if (reply.ok) render(await reply.json());
      else say(reply.status === 403 ? "this link's token is not valid" : "state: " + reply.status);
    } catch (err) {
      say("the console is gone (the drill has ended or was stopped)");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("start-button").addEventListener("click", () => {
      const names = $("participants").value.split("\n").map((n) => n.trim()).filter((n) => n);
      send("start", { participants: names });
    });
    $("pause-button").addEventListener("click", () => send("pause", {}));
    $("resume-button").addEventListener("click", () => send("resume", {}));
    $("speed").addEventListener("change", () => send("speed", { speed: Number($("speed").value) }));
    $("hold-button").addEventListener("click", () => send("hold", { seconds: 30 }));
    $("abort-button").addEventListener("click", () => { abortArmed = true; $("abort-confirm").hidden = false; });
    $("abort-confirm").addEventListener("click", () => {
      if (abortArmed) send("abort", {});
      abortArmed = false;
      $("abort-confirm").hidden = true;
    });
    document.addEventListener("keydown", (event) => {
      if (!state || state.role !== "facilitator" || state.status !== "running") return;
      if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
      const i = Number(event.key) - 1;
      if (Number.isInteger(i) && i >= 0 && i < state.kinds.length) record(state.kinds[i]);
    });
    poll();
    window.setInterval(poll, POLL_MS);
  });
})();
