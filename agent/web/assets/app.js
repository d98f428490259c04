// The status page: reads the local API (docs/web.md) and draws it with DOM calls only.
// Data never goes through innerHTML: every text from the device is set as textContent.
'use strict';
(function () {
  const state = { timeZone: undefined, csrf: null, loginEnabled: false, lastLiveKey: null, status: null };

  // --- small helpers -------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function setText(id, text) { $(id).textContent = text; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function fmtTime(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    try {
      return new Intl.DateTimeFormat(undefined, {
        timeZone: state.timeZone, year: 'numeric', month: 'short', day: 'numeric',
        hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false, timeZoneName: 'short',
      }).format(d);
    } catch (e) {
      return d.toISOString();
    }
  }
  function timeEl(iso, cls) { return el('time', { datetime: iso, class: cls || 'when' }, fmtTime(iso)); }
  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i === 0 ? 0 : 1) + ' ' + u[i];
  }

  // outcome → [symbol word, class]; the word carries the meaning, the colour only helps
  const OUTCOMES = {
    committed: ['✓ Updated', 'ok'],
    valid: ['✓ Valid', 'ok'],
    already_installed: ['= Already installed', 'ok'],
    rejected: ['✗ Refused', 'bad'],
    rolled_back: ['↩ Rolled back', 'bad'],
    rollback_failed: ['⚠ Rollback failed', 'bad'],
  };
  function outcomeBadge(outcome, running) {
    if (running || !outcome) return el('span', { class: 'badge run' }, '… In progress');
    const [word, cls] = OUTCOMES[outcome] || [outcome, 'warn'];
    return el('span', { class: 'badge ' + cls }, word);
  }
  const PHASES = { staging: 'Copying the package', hashing: 'Checking the package', importing: 'Importing the image', unpacking: 'Unpacking image layers' };

  async function api(path, opts) {
    const res = await fetch(path, Object.assign({ credentials: 'same-origin', cache: 'no-store' }, opts || {}));
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new Error((body && body.error && body.error.message) || ('HTTP ' + res.status));
      err.status = res.status;
      err.code = body && body.error && body.error.code;
      throw err;
    }
    return body;
  }

  // --- device and services -------------------------------------------------------------
  function renderStatus(s) {
    state.status = s;
    state.timeZone = s.time.time_zone;
    setText('device-id', s.device.id);
    setText('device-class', s.device.device_class);
    setText('device-key', s.device.public_key ? s.device.public_key + ' (X25519)' : 'unknown');
    setText('signatures', s.signatures_required ? 'Required: only packages signed by a trusted key are accepted' : 'Not required: no trusted keys are installed');
    setText('device-time', fmtTime(s.time.now) + ' (' + s.time.time_zone + ')');
    setText('updater-version', s.updater_version);
    renderServices(s.services);
    renderLogin(s.login);
    if (s.inbox && s.inbox.waiting_for_window > 0) {
      setText('upload-status', s.inbox.waiting_for_window + ' package(s) wait in the inbox for the maintenance window.');
    }
  }

  function renderServices(list) {
    const ul = $('services');
    clear(ul);
    if (!list.length) ul.append(el('li', {}, 'The catalog has no services.'));
    for (const svc of list) {
      const c = svc.container;
      const running = c.running ? ['● running', 'ok'] : ['○ ' + c.status, 'bad'];
      const health = { healthy: ['✓ healthy', 'ok'], unhealthy: ['✗ unhealthy', 'bad'], starting: ['… starting', 'warn'] }[c.health] || [c.health === 'none' ? 'no image health check' : c.health, 'muted'];
      const last = svc.last_result;
      const dl = el('dl', { class: 'facts' },
        el('dt', {}, 'Version'), el('dd', {}, svc.version || 'not installed by Caisson'),
        el('dt', {}, 'Container'), el('dd', {}, el('span', { class: running[1] }, running[0]), ' · ', el('span', { class: health[1] }, health[0])),
        el('dt', {}, 'Image'), el('dd', { class: 'mono wrap' }, c.image || '–'),
        el('dt', {}, 'Health check'), el('dd', {}, svc.health_check),
        el('dt', {}, 'Last result'), el('dd', {}, last ? outcomeBadge(last.outcome, !last.outcome) : 'none yet', last ? ' ' : null, last ? timeEl(last.at) : null,
          last && last.error_code ? el('span', { class: 'mono' }, ' ' + last.error_code) : null),
      );
      ul.append(el('li', { 'data-service': svc.name }, el('h3', {}, svc.name, el('span', { class: 'muted' }, ' (' + svc.runtime_mode + ')')), dl));
    }
  }

  // --- the update in progress ----------------------------------------------------------
  // the journal may note one state twice (e.g. staged, then its manifest): one line, both details
  function stepsList(steps) {
    const ol = el('ol', { class: 'steps' });
    let last = null;
    for (const st of steps) {
      if (last && last.state === st.state) {
        if (st.detail) last.li.append(el('span', { class: 'muted' }, (last.detailed ? ' · ' : ' — ') + st.detail));
        last.detailed = last.detailed || !!st.detail;
        continue;
      }
      const li = el('li', { 'data-state': st.state }, timeEl(st.at), ' ', st.text, st.detail ? el('span', { class: 'muted' }, ' — ' + st.detail) : null);
      ol.append(li);
      last = { state: st.state, li: li, detailed: !!st.detail };
    }
    return ol;
  }
  function reasonBox(u) {
    if (!u.error) return null;
    return el('div', { class: 'reason', role: 'note' },
      el('p', {}, el('strong', {}, 'Reason: '), u.error.message),
      el('p', {}, el('strong', {}, 'Error code: '), el('span', { class: 'mono error-code' }, u.error.code)),
      el('p', {}, el('strong', {}, 'Next step: '), u.error.next));
  }

  function renderLive(live) {
    const body = $('live-body');
    const u = live.update;
    clear(body);
    const key = u ? u.update_id + ':' + (u.outcome || 'open') : 'none';
    // a new update or a finished one: services and history have changed too
    if (state.lastLiveKey !== null && key !== state.lastLiveKey) refreshAll();
    state.lastLiveKey = key;
    if (!u) {
      body.append(el('p', { id: 'live-headline', class: 'headline' }, 'No update yet.'));
      return;
    }
    const what = (u.service || 'package') + ' ' + (u.from_version ? u.from_version + ' → ' : '→ ') + (u.to_version || '?');
    body.append(
      el('p', { id: 'live-headline', class: 'headline' }, outcomeBadge(u.outcome, live.running), ' ', what),
      el('p', { id: 'live-summary' }, u.summary),
      el('p', { class: 'muted' }, 'From ', u.source, ': ', el('span', { class: 'mono wrap' }, u.package_file), ' · started ', timeEl(u.started_at),
        u.finished_at ? ' · finished ' : null, u.finished_at ? timeEl(u.finished_at) : null),
    );
    if (live.running) body.append(el('p', { id: 'live-step' }, el('strong', {}, 'Now: '), u.state_text));
    const p = live.progress;
    const copying = /^(received|staged|validated|loading_image)/.test(u.state);
    if (live.running && p && p.bytes && copying) {
      const pct = p.bytes.total > 0 ? Math.min(100, Math.round((p.bytes.done / p.bytes.total) * 100)) : 100;
      const label = (PHASES[p.bytes.phase] || p.bytes.phase) + ': ' + fmtBytes(p.bytes.done) + ' of ' + fmtBytes(p.bytes.total) + ' (' + pct + '%)';
      body.append(el('p', { id: 'live-bytes' }, label), el('progress', { max: 100, value: pct, 'aria-label': label }));
    }
    if (live.running && p && p.health && u.state.indexOf('health_checking') === 0) {
      body.append(el('p', { id: 'live-health' }, 'Health window: ' + p.health.seconds_left + ' s left' + (p.health.note ? ' · ' + p.health.note : '')));
    }
    body.append(reasonBox(u) || '', el('h3', {}, 'Steps'), stepsList(u.steps));
  }

  // --- history -------------------------------------------------------------------------
  function renderHistory(h) {
    const ol = $('history');
    clear(ol);
    if (!h.updates.length) ol.append(el('li', {}, 'No updates yet.'));
    for (const u of h.updates) {
      const what = (u.kind === 'validation' ? 'validation of ' : '') + (u.service || u.package_file) + (u.to_version ? ' ' + (u.from_version ? u.from_version + ' → ' : '→ ') + u.to_version : '');
      const details = el('details', {},
        el('summary', {}, outcomeBadge(u.outcome, !u.outcome), ' ', what, ' ', timeEl(u.started_at), u.error ? el('span', { class: 'mono' }, ' ' + u.error.code) : null),
        el('p', {}, u.summary),
        reasonBox(u),
        el('p', { class: 'muted' }, 'ID ', el('span', { class: 'mono' }, u.update_id), ' · from ', u.source, ': ', el('span', { class: 'mono wrap' }, u.package_file)),
        stepsList(u.steps));
      ol.append(el('li', { 'data-update': u.update_id }, details));
    }
  }

  // --- login and changes ---------------------------------------------------------------
  function renderLogin(login) {
    state.loginEnabled = login.enabled;
    $('login-off').hidden = login.enabled;
    const loggedIn = login.enabled && state.csrf !== null;
    $('login-form').hidden = !login.enabled || loggedIn;
    $('operator-tools').hidden = !loggedIn;
  }
  function loggedIn(session) {
    state.csrf = session.csrf_token;
    setText('session-info', 'Logged in until ' + fmtTime(session.expires_at) + ' if idle.');
    if (state.status) renderLogin(state.status.login);
  }
  function loggedOut(message) {
    state.csrf = null;
    if (state.status) renderLogin(state.status.login);
    setText('login-message', message || '');
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const pw = $('password');
    $('login-button').disabled = true;
    setText('login-message', '');
    try {
      const s = await api('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password: pw.value }) });
      pw.value = '';
      loggedIn(s);
      $('upload-file').focus();
    } catch (e) {
      setText('login-message', 'Login refused: ' + e.message);
      pw.select();
    } finally {
      $('login-button').disabled = false;
    }
  });

  $('logout-button').addEventListener('click', async () => {
    try {
      await api('/api/logout', { method: 'POST', headers: { 'X-CSRF-Token': state.csrf || '' } });
    } catch (e) { /* the session is gone either way */ }
    loggedOut('Logged out.');
  });

  // a download cannot show an error on the page: check the session first
  $('diagnostics-link').addEventListener('click', async (ev) => {
    ev.preventDefault();
    let s = null;
    try { s = await api('/api/session'); } catch (e) { s = null; }
    if (!s || !s.logged_in) return loggedOut('Your session has ended; log in again.');
    loggedIn(s);
    window.location.assign('/api/diagnostics');
  });

  $('upload-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const file = $('upload-file').files[0];
    if (!file) return;
    const bar = $('upload-progress');
    $('upload-progress-box').hidden = false;
    bar.value = 0;
    $('upload-button').disabled = true;
    setText('upload-status', 'Uploading ' + file.name + '…');
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/upload?name=' + encodeURIComponent(file.name));
    xhr.setRequestHeader('X-CSRF-Token', state.csrf || '');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      setText('upload-status', 'Uploading ' + file.name + ': ' + fmtBytes(e.loaded) + ' of ' + fmtBytes(e.total) + ' (' + bar.value + '%)');
    };
    xhr.onload = () => {
      $('upload-button').disabled = false;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status === 202) {
        bar.value = 100;
        setText('upload-status', '✓ Uploaded ' + file.name + ' (' + fmtBytes(body.size) + '). It is now in the inbox; the update above shows its progress.');
        $('upload-file').value = '';
        return;
      }
      const msg = (body && body.error && body.error.message) || ('HTTP ' + xhr.status);
      setText('upload-status', '✗ Upload refused: ' + msg);
      if (xhr.status === 401) loggedOut('Your session has ended; log in again.');
    };
    xhr.onerror = () => {
      $('upload-button').disabled = false;
      setText('upload-status', '✗ The upload was interrupted; nothing was added to the inbox. Try again.');
    };
    xhr.send(file);
  });

  // --- loading and live events ---------------------------------------------------------
  async function refreshAll() {
    try {
      const [s, h] = await Promise.all([api('/api/status'), api('/api/history?limit=50')]);
      renderStatus(s);
      renderHistory(h);
    } catch (e) {
      setText('connection', '⚠ Cannot read the status: ' + e.message);
    }
  }

  function connect() {
    const es = new EventSource('/api/events');
    es.addEventListener('open', () => setText('connection', '● Live'));
    es.addEventListener('live', (ev) => renderLive(JSON.parse(ev.data)));
    es.addEventListener('refresh', () => refreshAll());
    es.addEventListener('error', () => setText('connection', '○ Reconnecting…'));
  }

  async function start() {
    await refreshAll();
    try {
      const s = await api('/api/session');
      if (s.logged_in) loggedIn(s);
    } catch (e) { /* not logged in */ }
    connect();
    setInterval(refreshAll, 15000);
  }
  start();
})();
