// undercloud live updates. Pages work without this script (they reload
// themselves); with it, a page marked data-live follows the server's event
// stream: new boot events appear in the events table, machine rows and the
// machine page's state change as machines boot, and ages stay current.
(function () {
  "use strict";
  var body = document.body;
  updateAges();
  setInterval(updateAges, 10000);
  if (!body || body.dataset.live !== "on" || !window.EventSource) {
    return;
  }
  var site = body.dataset.liveSite || "";
  var url = "/api/v1/events/stream" + (site ? "?site=" + encodeURIComponent(site) : "");
  var badge = document.getElementById("live");
  var es = new EventSource(url);
  es.onopen = function () { setBadge(true); };
  es.onerror = function () { setBadge(false); };
  es.addEventListener("boot", function (msg) {
    var ev;
    try { ev = JSON.parse(msg.data); } catch (e) { return; }
    addEvent(ev);
    updateMachine(ev);
  });

  function setBadge(on) {
    if (!badge) { return; }
    badge.textContent = on ? "live" : "reconnecting…";
    badge.className = on ? "live on" : "live";
  }

  // addEvent puts the event on top of the recent-events table, keeping
  // its length.
  function addEvent(ev) {
    var table = document.getElementById("events");
    if (!table) { return; }
    var tbody = table.tBodies[0];
    if (tbody.querySelector('tr[data-event-id="' + ev.id + '"]')) { return; }
    var none = document.getElementById("no-events");
    if (none) { none.remove(); }
    var tr = document.createElement("tr");
    tr.dataset.eventId = ev.id;
    tr.dataset.mac = ev.mac;
    tr.className = "fresh";
    var cells = [fmtTime(ev.at), "", ev.machine || "", ev.mac, ev.site || "", ev.kind,
      versionName(ev), ev.ip || "", eventDetail(ev)];
    cells.forEach(function (text, i) {
      var td = document.createElement("td");
      if (i === 1) {
        td.appendChild(ageEl(ev.at));
      } else if (i === 3) {
        var code = document.createElement("code");
        code.textContent = text;
        td.appendChild(code);
      } else {
        td.textContent = text;
      }
      if (i === 5) {
        td.className = "kind kind-" + ev.kind;
        if (ev.repeats) {
          var rep = document.createElement("span");
          rep.className = "repeats";
          rep.title = ev.repeats + " repeats counted, not stored";
          rep.textContent = " \u00d7" + ev.repeats;
          td.appendChild(rep);
        }
      }
      if (i === 8) { td.className = "detail"; }
      tr.appendChild(td);
    });
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > 50) { tbody.deleteRow(tbody.rows.length - 1); }
  }

  // updateMachine shows the machine's new state and last step wherever
  // the page lists it.
  function updateMachine(ev) {
    if (!ev.state) { return; }
    var rows = document.querySelectorAll('tr[data-mac="' + ev.mac + '"]');
    rows.forEach(function (tr) {
      if (tr.dataset.eventId) { return; }
      var cell = tr.querySelector(".state-cell");
      if (cell) { cell.replaceChildren(stateEl(ev.state)); }
      var last = tr.querySelector(".last-event");
      if (last) {
        last.textContent = ev.kind;
        var age = last.nextElementSibling;
        if (age) { age.replaceChildren(ageEl(ev.at)); }
      }
      tr.classList.remove("fresh");
      void tr.offsetWidth;
      tr.classList.add("fresh");
    });
    var st = document.getElementById("machine-state");
    if (st && st.dataset.mac === ev.mac) {
      st.textContent = ev.state;
      st.className = "state state-" + ev.state;
      var facts = document.querySelector("#machine-facts .last-event");
      if (facts) {
        facts.replaceChildren(document.createTextNode(ev.kind + " "), ageEl(ev.at));
      }
    }
  }

  function stateEl(state) {
    var span = document.createElement("span");
    span.className = "state state-" + state;
    span.textContent = state;
    return span;
  }

  function ageEl(at) {
    var t = document.createElement("time");
    t.className = "age";
    t.setAttribute("datetime", at);
    t.textContent = age(at);
    return t;
  }

  // versionName names an event's version as the server's pages do
  // (VersionRef.String): "v2 (abcdef123456)", or the short commit.
  function versionName(ev) {
    var r = ev.version_ref;
    if (r && r.tag) { return r.tag + " (" + r.short + ")"; }
    return (ev.version || "").slice(0, 12);
  }

  // eventDetail is a booted event's report summed up, as the pages do.
  function eventDetail(ev) {
    if (ev.report) {
      var n = Object.keys(ev.report.files || {}).length;
      return "reported " + n + " file(s)" + (ev.report.hostname ? " as " + ev.report.hostname : "");
    }
    return ev.detail || "";
  }

  function fmtTime(at) {
    return new Date(at).toISOString().replace("T", " ").slice(0, 19);
  }

  function age(at) {
    var s = Math.floor((Date.now() - new Date(at).getTime()) / 1000);
    if (s < 60) { return Math.max(s, 0) + "s ago"; }
    if (s < 3600) { return Math.floor(s / 60) + "m ago"; }
    if (s < 172800) { return Math.floor(s / 3600) + "h ago"; }
    return Math.floor(s / 86400) + "d ago";
  }

  function updateAges() {
    document.querySelectorAll("time.age[datetime]").forEach(function (t) {
      var at = t.getAttribute("datetime");
      if (at) { t.textContent = age(at); }
    });
  }
})();
