/*
 * util.js - the console's small toolbox (docs/console.md):
 *   Moat.h(tag, attrs, ...children)  build an element; strings become text nodes, never HTML
 *   Moat.api(method, path, body)     fetch the REST API (JSON; X-CSRF-Token on every change)
 *   Moat.fmtTime / fmtSize / qs      formatting and query strings
 *   Moat.notice(text, kind)          the status line under the header
 * Every value that comes from the API reaches the page through textContent,
 * an attribute set with setAttribute, or a form control's value - nothing
 * here ever assigns innerHTML.
 */
'use strict';
window.Moat = window.Moat || {};
(function (M) {
  function append(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) append(el, k);
      else if (k instanceof Node) el.appendChild(k);
      else el.appendChild(document.createTextNode(String(k)));
    }
  }
  M.h = function (tag, attrs, ...kids) {
    const svg = tag.startsWith('svg:');
    const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
                   : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class' && !svg) el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else if (k === 'selected') el.selected = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    append(el, kids);
    return el;
  };
  M.clear = function (el) { while (el.firstChild) el.removeChild(el.firstChild); return el; };

  M.session = null;  // GET /api/v1/session (csrf_token, email, tenant, role, ...)

  // api - one API call; extra: more request headers (If-Match). The reply's
  // ETag is kept in M.lastEtag.
  M.api = async function (method, path, body, extra) {
    const opts = { method, headers: Object.assign({ Accept: 'application/json' }, extra || {}), credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    if (method !== 'GET' && M.session && M.session.csrf_token) opts.headers['X-CSRF-Token'] = M.session.csrf_token;
    let r;
    try {
      r = await fetch(path, opts);
    } catch (e) {
      const err = new Error(M.t('err.network')); err.status = 0; throw err;
    }
    M.lastEtag = r.headers.get('ETag');
    const ct = r.headers.get('Content-Type') || '';
    let data = null;
    if (ct.startsWith('application/json')) {
      try { data = await r.json(); } catch (e) { data = null; }
    } else {
      data = await r.text();
    }
    if (!r.ok) {
      const err = new Error((data && data.error) || (r.status + ' ' + r.statusText));
      err.status = r.status; err.data = data;
      if (r.status === 401 && path !== '/api/v1/session' && M.onSessionLost) M.onSessionLost();
      throw err;
    }
    return data;
  };

  M.qs = function (params) {
    const u = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
    const s = u.toString();
    return s ? '?' + s : '';
  };

  function pad(n) { return n < 10 ? '0' + n : '' + n; }
  // fmtTime - "2026/11/28 14:00:51" in the browser's time zone (the seed's format)
  M.fmtTime = function (v) {
    if (v === null || v === undefined || v === '') return '';
    const d = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
    if (isNaN(d.getTime())) return String(v);
    return d.getFullYear() + '/' + pad(d.getMonth() + 1) + '/' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  };
  M.fmtSize = function (n) {
    if (typeof n !== 'number') return '';
    return (n / 1024).toFixed(2);
  };
  M.fmtNum = function (n) { return typeof n === 'number' ? n.toLocaleString() : ''; };

  let noticeTimer = null;
  M.notice = function (text, kind) {
    const el = document.getElementById('notice');
    if (!el) return;
    el.textContent = text || '';
    el.className = kind || 'info';
    el.hidden = !text;
    clearTimeout(noticeTimer);
    if (text && kind !== 'error') noticeTimer = setTimeout(() => { el.hidden = true; }, 6000);
  };

  // errorBox - an inline error for a form (role=alert, the API's message as text)
  M.errorBox = function () {
    const el = M.h('div', { class: 'error', role: 'alert', hidden: true });
    el.show = function (msg) { el.textContent = msg || ''; el.hidden = !msg; };
    return el;
  };

  // field - a labelled form row
  M.field = function (label, control, hint) {
    return M.h('label', { class: 'field' }, M.h('span', { class: 'label' }, label), control,
      hint ? M.h('span', { class: 'hint' }, hint) : null);
  };

  M.select = function (attrs, options, value) {
    return M.h('select', attrs, options.map(([v, label]) => M.h('option', { value: v, selected: v === value }, label)));
  };

  // lines / unlines - textarea contents <-> list of non-empty trimmed lines
  M.lines = function (text) {
    return text.split(/[\r\n,]+/).map((s) => s.trim()).filter((s) => s.length);
  };

  M.downloadText = function (name, text, type) {
    const blob = new Blob([text], { type: type || 'text/plain' });
    const a = M.h('a', { href: URL.createObjectURL(blob), download: name });
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };
})(window.Moat);
