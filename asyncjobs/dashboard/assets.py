"""The dashboard's stylesheet and its one script, served from ``/dashboard/static/``.

Pages work without the script. It does three things: live regions (each
element marked ``data-poll`` re-fetches its page with the ``ETag`` the page
carries and swaps itself in, so that a 304 costs the server a change mark
and nothing else), the refresh interval picker (kept in ``localStorage``,
polling paused while the tab is hidden), and the sign-in link
(``/dashboard/login#<token>`` fills in the token from the fragment, which
never reaches a server log or a ``Referer``, for a click to sign in).
"""

from __future__ import annotations

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;padding:.6rem 1.2rem;
background:#1d2330;color:#fff}
header a{color:#cfe0ff}header form{margin:0}
header nav{display:flex;flex-wrap:wrap;gap:.2rem .8rem}
.who{margin-left:auto;color:#c3cad8}
main{padding:1rem 1.2rem;max-width:80rem}
h1{font-size:1.5rem;margin:.4rem 0 .8rem}h2{font-size:1.15rem;margin:1.4rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.2rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #dde2ea;vertical-align:top}
th{font-weight:600;background:#eef1f6}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f0f2f6;padding:.6rem;overflow:auto;max-height:30rem}
code{font-size:.92em}
time{white-space:nowrap}
.banner{padding:.5rem .8rem;background:#fff3cd;border:1px solid #e7c65a;margin:.5rem 0}
.ok{background:#e5f5e9;border-color:#8cc79b}
.error{background:#fde8e8;border-color:#e59a9a}
.empty{color:#667}
.counts{display:flex;flex-wrap:wrap;gap:.6rem;margin:.4rem 0 1rem;padding:0;list-style:none}
.counts li{border:1px solid #dde2ea;border-radius:6px;padding:.4rem .8rem;min-width:7rem;background:#fff}
.counts strong{display:block;font-size:1.4rem;font-variant-numeric:tabular-nums}
form.inline{display:inline}
form.filters{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center;margin:.4rem 0}
fieldset{border:1px solid #dde2ea;padding:.2rem .6rem}
button{cursor:pointer}
.status-failed{color:#b3261e}.status-completed{color:#1e7a34}
.chart{width:100%;max-width:48rem;height:auto;background:#fff;border:1px solid #dde2ea}
.chart .completed{fill:#3d9a55}.chart .failed{fill:#d0483d}.chart .canceled{fill:#9aa3b2}
.chart text{font-size:10px;fill:#667}
.legend span{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 .8em}
.legend .completed{background:#3d9a55}.legend .failed{background:#d0483d}
.legend .canceled{background:#9aa3b2}
.stale [data-poll]{opacity:.6}
#poll{margin:0}
@media (prefers-color-scheme: dark){
body{background:#14171d;color:#e4e7ee}th{background:#222734}
th,td{border-color:#2d3342}pre{background:#1d212b}a{color:#9cc2ff}
.counts li{background:#1b1f28;border-color:#2d3342}
.chart{background:#1b1f28;border-color:#2d3342}
.banner{background:#3a3216;border-color:#7a6420}.error{background:#3d1d1d}
.ok{background:#173222}}
"""

SCRIPT = """
(function () {
  "use strict";
  var root = document.documentElement;

  // The sign-in link: /dashboard/login#<token> fills in the token and
  // forgets the fragment; signing in takes a click, so that a link someone
  // else made cannot swap this browser's session unseen.
  var login = document.getElementById("login");
  if (login && location.hash.length > 1) {
    try {
      login.elements.token.value = decodeURIComponent(location.hash.slice(1));
    } catch (bad) { /* a mangled link: the box stays empty */ }
    history.replaceState(null, "", location.pathname);
    var ask = document.getElementById("from-link");
    if (ask) ask.hidden = false;
    login.querySelector("button").focus();
    return;
  }

  var KEY = "asyncjobs.dashboard.refresh";
  var picker = document.getElementById("refresh");
  var mark = document.querySelector('meta[name="asyncjobs-etag"]');
  var etag = mark ? mark.content : null;
  var seconds = 5;
  try {
    var kept = Number(localStorage.getItem(KEY));
    if (localStorage.getItem(KEY) !== null && kept >= 0) seconds = kept;
  } catch (blocked) { /* no storage: the default */ }
  var timer = null;
  var busy = false;

  if (!document.querySelector("[data-poll]")) {
    if (picker) picker.hidden = true;
    return;
  }
  if (picker) {
    picker.hidden = false;
    picker.elements.seconds.value = String(seconds);
    picker.addEventListener("change", function () {
      seconds = Number(picker.elements.seconds.value);
      try { localStorage.setItem(KEY, String(seconds)); } catch (blocked) { /* kept for this page */ }
      schedule();
    });
  }

  // A failed refresh (the store unreadable, the session ended) says so.
  function stale(on) {
    root.classList.toggle("stale", on);
    var note = document.getElementById("stale");
    if (note) note.hidden = !on;
  }

  function schedule() {
    clearTimeout(timer);
    if (seconds > 0 && !document.hidden) timer = setTimeout(poll, seconds * 1000);
  }

  function poll() {
    if (busy) return;
    busy = true;
    var headers = {};
    if (etag) headers["If-None-Match"] = etag;
    fetch(location.href, {headers: headers, cache: "no-store", credentials: "same-origin"})
      .then(function (answer) {
        if (answer.status === 304) return null;
        if (!answer.ok || answer.redirected) throw new Error(String(answer.status));
        etag = answer.headers.get("ETag");
        return answer.text();
      })
      .then(function (text) {
        stale(false);
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, "text/html");
        document.querySelectorAll("[data-poll]").forEach(function (region) {
          var next = fresh.getElementById(region.id);
          if (next) region.replaceWith(document.importNode(next, true));
        });
      })
      .catch(function () { stale(true); })
      .then(function () { busy = false; schedule(); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) clearTimeout(timer); else if (seconds > 0) poll();
  });
  schedule();
})();
"""
