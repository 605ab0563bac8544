// gatewayd dashboard: polls the JSON API and renders it. Read-only; every
// value from the network goes into the page as text, never as HTML.
"use strict";
(function () {
  const FAST_MS = 2000; // Now and Flows: the server samples throughput this often
  const SLOW_MS = 5000; // Clients, DNS, Rules
  const $ = (id) => document.getElementById(id);
  const state = { flows: [], prev: new Map(), sortKey: "bytes_down", asc: false, filter: "" };

  function bytes(n) {
    const u = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
  }
  const rate = (bps) => bytes(bps) + "/s";
  function duration(s) {
    s = Math.floor(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function cell(main, sub, cls) {
    const td = el("td", main, cls);
    if (sub) td.appendChild(el("span", sub, "sub"));
    return td;
  }
  function fill(tbody, rows, cols, empty) {
    const frag = document.createDocumentFragment();
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const c of r) tr.appendChild(c instanceof Node ? c : el("td", c));
      frag.appendChild(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = el("td", empty, "empty");
      td.colSpan = cols;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }
  async function get(path) {
    const r = await fetch(path, { cache: "no-store" });
    if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
    return r.json();
  }
  function showError(err) {
    const e = $("error");
    if (err) { e.textContent = "Cannot reach gatewayd: " + err.message; e.hidden = false; }
    else e.hidden = true;
  }

  function renderNow(v) {
    $("version").textContent = v.version;
    const st = $("state");
    st.textContent = v.interception.installed ? "intercepting" : "not intercepting";
    st.className = "pill " + (v.interception.installed ? "ok" : "bad");
    $("tcp-flows").textContent = v.tcp_flows;
    $("udp-sessions").textContent = v.udp_sessions;
    const last = v.throughput[v.throughput.length - 1];
    $("rate-now").textContent = last ? rate(last.up) + " / " + rate(last.down) : "–";
    $("dns-qps").textContent = v.dns.enabled ? v.dns.qps.toFixed(1) : "DNS off";
    $("dns-hit").textContent = v.dns.enabled ? (100 * v.dns.cache_hit_ratio).toFixed(0) + " %" : "–";
    $("dns-total").textContent = v.dns.enabled ? v.dns.queries + " · " + v.dns.blocked : "–";
    $("interception").textContent = v.interception.installed ? "installed" : "not installed";
    $("selfheal").textContent = v.interception.last_self_heal
      ? new Date(v.interception.last_self_heal).toLocaleString() + " (" + v.interception.self_heals + " since start)"
      : "never";
    $("failsafe").textContent = v.interception.failsafe === "closed"
      ? "closed: if gatewayd dies, the LAN has no internet" : "open: if gatewayd dies, the LAN falls back to plain forwarding";
    $("uptime").textContent = duration(v.uptime_seconds) + " (since " + new Date(v.started).toLocaleString() + ")";
    $("config-path").textContent = v.config.path || "built-in defaults";
    $("config-digest").textContent = v.config.sha256 ? "sha256 " + v.config.sha256.slice(0, 12) : "";
    $("querylog-note").hidden = v.query_log;
    drawGraph(v);
  }

  function drawGraph(v) {
    const c = $("graph");
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (w === 0) return;
    c.width = Math.round(w * dpr); c.height = Math.round(h * dpr);
    const g = c.getContext("2d");
    g.scale(dpr, dpr);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const pts = v.throughput;
    const spanMs = 150 * v.sample_seconds * 1000;
    const now = Date.now();
    const t0 = now - spanMs;
    let top = 1000;
    for (const p of pts) top = Math.max(top, p.up, p.down);
    top *= 1.15;
    const padL = 70, padB = 4, padT = 6;
    const x = (t) => padL + ((t - t0) / spanMs) * (w - padL - 4);
    const y = (r) => padT + (1 - r / top) * (h - padT - padB);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = color("--muted"); g.strokeStyle = color("--line"); g.lineWidth = 1;
    for (let i = 0; i <= 3; i++) {
      const r = (top / 3) * i, yy = Math.round(y(r)) + 0.5;
      g.beginPath(); g.moveTo(padL, yy); g.lineTo(w, yy); g.stroke();
      g.fillText(rate(r), 2, Math.max(yy - 2, 10));
    }
    for (const [key, name] of [["up", "--up"], ["down", "--down"]]) {
      g.strokeStyle = color(name); g.lineWidth = 2; g.beginPath();
      let prevT = null;
      for (const p of pts) {
        if (p.t < t0) continue;
        if (prevT === null || p.t - prevT > v.gap_seconds * 1000) g.moveTo(x(p.t), y(p[key]));
        else g.lineTo(x(p.t), y(p[key]));
        prevT = p.t;
      }
      g.stroke();
    }
    $("graph-span").textContent = "· last " + Math.round(spanMs / 60000) + " min, sampled while a dashboard is open";
  }

  // renderFlows shows each flow's rate over at least RATE_MS of the
  // server's clock (answers closer together keep the last rate), or its
  // average over its age when it is new.
  const RATE_MS = 1000;
  function renderFlows(v) {
    const seen = new Map();
    for (const f of v.flows) {
      const total = f.bytes_up + f.bytes_down;
      let p = state.prev.get(f.id);
      if (!p) p = { total: total, at: v.at, rate: f.age_seconds > 0 ? total / f.age_seconds : 0 };
      else if (v.at - p.at >= RATE_MS) p = { total: total, at: v.at, rate: ((total - p.total) * 1000) / (v.at - p.at) };
      f.rate = p.rate;
      seen.set(f.id, p);
    }
    state.prev = seen;
    state.flows = v.flows;
    $("flows-count").textContent = v.total > v.flows.length ? "(" + v.flows.length + " largest of " + v.total + ")" : "(" + v.total + ")";
    drawFlows();
  }

  function drawFlows() {
    const q = state.filter.toLowerCase();
    const rows = state.flows.filter((f) => !q || [f.client, f.hostname, f.mac, f.domain, f.outbound, f.rule, f.destination]
      .some((s) => s && s.toLowerCase().includes(q)));
    const k = state.sortKey, dir = state.asc ? 1 : -1;
    rows.sort((a, b) => {
      const av = a[k] === undefined ? "" : a[k], bv = b[k] === undefined ? "" : b[k];
      return (av < bv ? -1 : av > bv ? 1 : 0) * dir;
    });
    fill($("flows-body"), rows.map((f) => [
      cell(f.client_ip, [f.hostname, f.mac].filter(Boolean).join(" · ")),
      f.destination, f.domain || "", f.proto,
      cell(f.outbound || "", f.rule || ""),
      el("td", bytes(f.bytes_up), "num"), el("td", bytes(f.bytes_down), "num"),
      el("td", rate(Math.max(f.rate, 0)), "num"), el("td", duration(f.age_seconds), "num"),
    ]), 9, q ? "no flow matches the filter" : "no flows open");
    for (const th of document.querySelectorAll("#flows-table th")) {
      th.classList.toggle("sorted", th.dataset.key === k);
      th.classList.toggle("asc", th.dataset.key === k && state.asc);
    }
  }

  function renderClients(v) {
    fill($("clients-body"), v.clients.map((c) => [
      cell(c.hostname || c.ip, c.hostname ? c.ip : ""), c.mac || "",
      el("td", c.flows + " (" + c.tcp + " tcp, " + c.udp + " udp)", "num"),
      el("td", bytes(c.bytes_up), "num"), el("td", bytes(c.bytes_down), "num"),
      c.top_domains.map((d) => d.name + (d.count > 1 ? " ×" + d.count : "")).join(", "),
    ]), 6, "no device has flows open");
  }

  function renderDNS(v) {
    $("querylog-note").hidden = v.query_log;
    fill($("upstreams-body"), v.upstreams.map((u) => [
      u.name, el("td", u.queries, "num"), el("td", u.errors, u.errors ? "num blocked" : "num"),
      el("td", u.latency_ms ? u.latency_ms.toFixed(1) + " ms" : "–", "num"),
    ]), 4, v.enabled ? "no upstream asked yet" : "DNS hijack off");
    fill($("blocked-body"), v.top_blocked.map((b) => [el("td", b.name, "blocked"), el("td", b.count, "num")]), 2,
      v.query_log ? "nothing blocked yet" : "query log off");
    fill($("recent-body"), v.recent.map((q) => [
      new Date(q.time).toLocaleTimeString(), cell(q.client, q.hostname), q.name, q.type,
      el("td", q.result === "upstream" || q.result === "cache" ? q.rcode : q.result + " (" + q.rcode + ")",
        q.result === "blocked" || q.result === "rebinding" ? "blocked" : ""),
      q.answer || "", el("td", q.latency_ms.toFixed(1) + " ms", "num"),
    ]), 7, v.query_log ? "no queries yet" : "query log off");
  }

  function renderRules(v) {
    const rows = v.rules.map((r, i) => [String(i + 1), r.label, r.match, r.outbound,
      el("td", r.hits_tcp, "num"), el("td", r.hits_udp, "num")]);
    if (v.default) rows.push(["", "default", "everything else", v.default, el("td", "", "num"), el("td", "", "num")]);
    fill($("rules-body"), rows, 6, "no routing policy: every flow goes direct");
    const fp = v.fast_path;
    $("fastpath").textContent = fp.enabled
      ? "Kernel fast path: " + fp.static + " static direct prefixes; " + fp.learned + " DNS-learned addresses added, " + fp.withdrawn + " withdrawn since start."
      : "Kernel fast path: off.";
  }

  async function poll(paths, render) {
    try {
      const vs = await Promise.all(paths.map(get));
      vs.forEach((v, i) => render[i](v));
      showError(null);
      document.body.dataset.updated = String(Date.now());
    } catch (err) {
      showError(err);
    }
  }
  const fast = () => poll(["/api/now", "/api/flows"], [renderNow, renderFlows]);
  const slow = () => poll(["/api/clients", "/api/dns", "/api/rules"], [renderClients, renderDNS, renderRules]);

  $("flow-filter").addEventListener("input", (e) => { state.filter = e.target.value; drawFlows(); });
  for (const th of document.querySelectorAll("#flows-table th[data-key]")) {
    th.addEventListener("click", () => {
      if (state.sortKey === th.dataset.key) state.asc = !state.asc;
      else { state.sortKey = th.dataset.key; state.asc = false; }
      drawFlows();
    });
  }
  Promise.all([fast(), slow()]).then(() => { document.body.dataset.ready = "1"; });
  setInterval(fast, FAST_MS);
  setInterval(slow, SLOW_MS);
})();
