// Kiln UI enhancements. Every page works without this file; it adds copy
// and reveal buttons, confirmation dialogs, extra form rows, and live
// updates of running pipelines and job logs. It never builds markup from
// strings of its own: HTML it inserts comes from the server, which escapes it.
(function () {
  'use strict';

  function copyText(text, button) {
    var done = function () {
      var old = button.textContent;
      button.textContent = 'Copied!';
      setTimeout(function () { button.textContent = old; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.style.position = 'absolute';
    ta.style.left = '-9999px';
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand('copy'); } catch (e) { /* nothing else to try */ }
    document.body.removeChild(ta);
  }

  // The Run pipeline form: changing the ref (or an input other inputs'
  // rules read) reloads the form with a plain GET, so the server renders
  // that ref's inputs. Variables are not put in the URL.
  document.addEventListener('change', function (ev) {
    var el = ev.target.closest && ev.target.closest('[data-reload-inputs]');
    if (!el || !el.form) { return; }
    var params = new URLSearchParams();
    new FormData(el.form).forEach(function (v, k) {
      if (k === 'ref' || (el.name !== 'ref' && k.indexOf('inputs[') === 0)) { params.set(k, v); }
    });
    window.location.assign(el.getAttribute('data-reload-inputs') + '?' + params.toString());
  });

  document.addEventListener('click', function (ev) {
    var el = ev.target.closest('[data-copy], [data-reveal], [data-add-row]');
    if (!el) { return; }
    if (el.hasAttribute('data-copy')) {
      var src = document.querySelector(el.getAttribute('data-copy'));
      if (src) { copyText(src.textContent, el); }
      return;
    }
    if (el.hasAttribute('data-reveal')) {
      ev.preventDefault();
      var box = document.querySelector(el.getAttribute('data-reveal'));
      if (!box) { return; }
      var showing = el.getAttribute('aria-pressed') === 'true';
      box.querySelectorAll('.secret-value').forEach(function (v) { v.hidden = showing; });
      box.querySelectorAll('.masked').forEach(function (v) { v.hidden = !showing; });
      if (!el.hasAttribute('data-show-label')) { el.setAttribute('data-show-label', el.textContent); }
      el.textContent = showing ? el.getAttribute('data-show-label') : el.getAttribute('data-hide-label');
      el.setAttribute('aria-pressed', showing ? 'false' : 'true');
      return;
    }
    if (el.hasAttribute('data-add-row')) {
      var rows = document.querySelector(el.getAttribute('data-add-row'));
      var last = rows && rows.lastElementChild;
      if (!last) { return; }
      var row = last.cloneNode(true);
      row.querySelectorAll('input').forEach(function (i) { i.value = ''; });
      rows.appendChild(row);
      var first = row.querySelector('input');
      if (first) { first.focus(); }
    }
  });

  // Forms with data-confirm ask first; the server then skips its own
  // confirmation page (which is what users without JavaScript get).
  document.addEventListener('submit', function (ev) {
    var form = ev.target;
    var msg = form.getAttribute('data-confirm');
    if (!msg) { return; }
    if (!window.confirm(msg)) { ev.preventDefault(); return; }
    var c = document.createElement('input');
    c.type = 'hidden';
    c.name = 'confirmed';
    c.value = '1';
    form.appendChild(c);
  });

  // Live pipeline graph: swap in the server-rendered fragment while the
  // pipeline runs.
  function pollPipeline() {
    var live = document.getElementById('pipeline-live');
    if (!live || live.getAttribute('data-active') !== 'true') { return; }
    setTimeout(function () {
      fetch(live.getAttribute('data-live-url'), { credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          var tpl = document.createElement('template');
          tpl.innerHTML = html.trim();
          var fresh = tpl.content.firstElementChild;
          if (fresh && fresh.id === 'pipeline-live') {
            announcePipeline(live, fresh);
            live.replaceWith(fresh);
          }
          pollPipeline();
        })
        .catch(function () { setTimeout(pollPipeline, 5000); });
    }, 2000);
  }

  // announcePipeline tells screen readers, through the page's stable
  // role=status region, which jobs and whether the pipeline changed status
  // between two renderings of the graph.
  function announcePipeline(old, fresh) {
    var region = document.getElementById('pipeline-announce');
    if (!region) { return; }
    var before = {};
    old.querySelectorAll('[data-job-id]').forEach(function (j) { before[j.getAttribute('data-job-id')] = j.getAttribute('data-status'); });
    var said = [];
    fresh.querySelectorAll('[data-job-id]').forEach(function (j) {
      var was = before[j.getAttribute('data-job-id')];
      if (was !== undefined && was !== j.getAttribute('data-status')) {
        said.push(j.getAttribute('data-job-name') + ' ' + j.getAttribute('data-label'));
      }
    });
    if (old.getAttribute('data-status') !== fresh.getAttribute('data-status')) {
      said.push('Pipeline ' + fresh.getAttribute('data-label'));
    }
    if (said.length) { region.textContent = said.join(', ') + '.'; }
  }

  // Live job log: fetch events after the byte offset already shown and
  // append them, keeping collapsible sections nested.
  function followLog() {
    var log = document.getElementById('job-log');
    if (!log) { return; }
    var stack = Array.prototype.slice.call(log.querySelectorAll('details[data-unclosed]'));
    var url = log.getAttribute('data-trace-url');
    var tail = document.getElementById('log-tail');

    function container() { return stack.length ? stack[stack.length - 1] : log; }

    function atBottom() {
      return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
    }

    function apply(events) {
      events.forEach(function (e) {
        if (e.k === 'line') {
          var d = document.createElement('div');
          d.className = 'line';
          d.innerHTML = e.h;
          container().appendChild(d);
        } else if (e.k === 'start') {
          var det = document.createElement('details');
          det.className = 'section';
          det.setAttribute('data-section', e.n);
          if (!e.c) { det.open = true; }
          var sum = document.createElement('summary');
          sum.className = 'line section-header';
          sum.innerHTML = e.h;
          det.appendChild(sum);
          container().appendChild(det);
          stack.push(det);
        } else if (e.k === 'end') {
          for (var i = stack.length - 1; i >= 0; i--) {
            if (stack[i].getAttribute('data-section') === e.n) { stack.length = i; break; }
          }
        }
      });
    }

    function poll() {
      var follow = atBottom();
      fetch(url + '?offset=' + encodeURIComponent(log.getAttribute('data-offset')), { credentials: 'same-origin' })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (t) {
          apply(t.events || []);
          log.setAttribute('data-offset', String(t.offset));
          var st = document.getElementById('job-status');
          if (st) {
            var badge = st.querySelector('.ci-status');
            if (badge) { badge.className = 'ci-status ci-' + t.status; badge.lastChild.textContent = t.label; }
          }
          var dur = document.getElementById('job-duration');
          if (dur && t.duration) { dur.textContent = t.duration; }
          if (follow && (t.events || []).length) { window.scrollTo(0, document.documentElement.scrollHeight); }
          var more = t.offset < t.size;
          // #log-tail is a role=status region: a status change is announced.
          var changed = tail && tail.getAttribute('data-status') !== t.status;
          if (changed) { tail.setAttribute('data-status', t.status); }
          if (t.active || more) {
            log.setAttribute('data-active', 'true');
            if (changed) { tail.textContent = 'Job ' + t.label + '. Waiting for more output…'; }
            setTimeout(poll, more ? 100 : 1000);
          } else {
            log.setAttribute('data-active', 'false');
            if (tail) { tail.textContent = 'Job ' + t.label + '.'; }
          }
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    if (log.getAttribute('data-active') === 'true') { setTimeout(poll, 1000); }
  }

  // Cron field: describe the expression in words as it is typed.
  function describeCron() {
    var input = document.querySelector('[data-cron-describe]');
    var out = document.getElementById('cron-description');
    if (!input || !out) { return; }
    var timer = null;
    var zone = document.getElementById('s-tz');
    function update() {
      var u = input.getAttribute('data-cron-describe') + '?cron=' + encodeURIComponent(input.value) +
        '&cron_timezone=' + encodeURIComponent(zone ? zone.value : '');
      fetch(u, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (d) {
        out.textContent = d.error ? d.error : d.text + (d.next ? ' · next run ' + d.next : '');
      }).catch(function () {});
    }
    function later() { clearTimeout(timer); timer = setTimeout(update, 250); }
    input.addEventListener('input', later);
    if (zone) { zone.addEventListener('input', later); }
    document.querySelectorAll('[data-cron-preset]').forEach(function (b) {
      b.addEventListener('click', function () { input.value = b.getAttribute('data-cron-preset'); update(); });
    });
    update();
  }

  // Webhook trigger deliveries: refresh each table every 2 s.
  function watchDeliveries() {
    document.querySelectorAll('[data-deliveries-url]').forEach(function (el) {
      var id = el.id;
      setInterval(function () {
        var cur = document.getElementById(id);
        if (!cur) { return; }
        fetch(cur.getAttribute('data-deliveries-url'), { credentials: 'same-origin' })
          .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
          .then(function (html) {
            var tpl = document.createElement('template');
            tpl.innerHTML = html.trim();
            var fresh = tpl.content.firstElementChild;
            if (fresh && fresh.id === id) { cur.replaceWith(fresh); }
          }).catch(function () {});
      }, 2000);
    });
  }

  function init() {
    describeCron();
    watchDeliveries();
    pollPipeline();
    followLog();
  }
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
