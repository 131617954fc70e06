/*
 * quarantine.js - the quarantine: search (recipient, period), the list
 * with check boxes for bulk release / delete (POST /api/v1/quarantine/bulk), and the safe preview of one
 * copy (GET /api/v1/quarantine/{id}?content=1): the header block and the
 * text parts as text, an HTML part only sanitised in a sandboxed frame
 * (mime.js), the attachments by name, release and delete.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  let last = null;

  M.page('quarantine', async function (main, args) {
    if (args[0]) return preview(main, args[0]);
    const v = (last && last.form) || { rcpt: '', period: '30d', text: '' };
    const rcpt = h('input', { type: 'text', id: 'q-rcpt', value: v.rcpt, maxlength: 254, placeholder: 'user@example.com, *@example.com' });
    const text = h('input', { type: 'text', id: 'q-text', value: v.text, maxlength: 256 });
    const period = M.select({ id: 'q-period' }, [['1h', t('period.1h')], ['24h', t('period.24h')], ['7d', t('period.7d')], ['30d', t('period.30d')]], v.period);
    const err = M.errorBox();
    const results = h('div', { id: 'q-results' });
    const form = h('form', { class: 'card search', id: 'q-form' }, h('h1', null, t('title.quarantine')),
      h('p', { class: 'hint' }, t('q.retention')),
      h('div', { class: 'grid' }, M.field(t('tr.rcpt'), rcpt), M.field(t('tr.period'), period), M.field(t('q.text'), text, t('q.text.hint'))), err,
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'q-search' }, t('search'))));
    main.append(form, results);
    async function run() {
      const fv = { rcpt: rcpt.value.trim(), period: period.value, text: text.value.trim().toLowerCase() };
      err.show('');
      try {
        const r = await M.api('GET', '/api/v1/quarantine' + M.qs({ rcpt: fv.rcpt, since: fv.period, limit: 1000 }));
        last = { form: fv };
        // the API searches by recipient and time; sender, subject and rule are filtered here
        const msgs = (r.messages || []).filter((m) => !fv.text ||
          [m.subject, m.sender, m.from, m.rule, m.reason].some((x) => (x || '').toLowerCase().includes(fv.text)));
        list(results, msgs, run);
      } catch (e) { err.show(e.message); }
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
    run();
  });

  function list(box, msgs, reload) {
    M.clear(box);
    const writable = M.session.role === 'full';
    const checks = [];
    const all = h('input', { type: 'checkbox', id: 'q-all', 'aria-label': t('q.selectall') });
    all.addEventListener('change', () => checks.forEach((c) => { if (!c.disabled) c.checked = all.checked; }));
    const err = M.errorBox();
    async function bulk(what) {
      const ids = checks.filter((c) => c.checked).map((c) => c.value);
      if (!ids.length) { err.show(t('q.none')); return; }
      if (!window.confirm(t(what === 'release' ? 'q.confirm.release' : 'q.confirm.delete', ids.length))) return;
      // one request, each ID on its own (POST /api/v1/quarantine/bulk; at most 1,000: the list's limit)
      try {
        const r = await M.api('POST', '/api/v1/quarantine/bulk', { action: what, ids });
        const fails = (r.results || []).filter((x) => x.result !== 'released' && x.result !== 'deleted');
        M.notice(t(what === 'release' ? 'q.released.n' : 'q.deleted.n', r.done) +
          (fails.length ? ' · ' + t('q.failed', fails.length, fails[0].result) : ''), fails.length ? 'error' : 'ok');
      } catch (e) { err.show(e.message); return; }
      reload();
    }
    box.appendChild(h('p', { class: 'count', id: 'q-count' }, t('results.count', msgs.length)));
    if (!msgs.length) return;
    if (writable) {
      box.appendChild(h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'q-bulk-release', onclick: () => bulk('release') }, t('q.release.sel')),
        h('button', { type: 'button', class: 'danger', id: 'q-bulk-delete', onclick: () => bulk('delete') }, t('q.delete.sel'))));
    }
    box.appendChild(err);
    const cols = ['tr.col.time', 'tr.col.rcpt', 'tr.col.sender', 'tr.col.subject', 'q.rule', 'q.reason', 'tr.col.size', 'q.state'];
    box.appendChild(h('table', { class: 'list', id: 'q-table' },
      h('thead', null, h('tr', null, writable ? h('th', null, all) : null, cols.map((c) => h('th', { scope: 'col' }, t(c))))),
      h('tbody', null, msgs.map((m) => {
        const cb = h('input', { type: 'checkbox', value: m.id, class: 'q-check', disabled: !!m.released, 'aria-label': t('q.select') });
        checks.push(cb);
        return h('tr', { 'data-id': m.id },
          writable ? h('td', null, cb) : null,
          h('td', null, h('a', { href: '#/quarantine/' + m.id, class: 'q-open' }, M.fmtTime(m.time))),
          h('td', null, m.rcpt), h('td', null, m.sender === '' ? '<>' : m.sender),
          h('td', { class: 'subject' }, m.subject), h('td', null, m.rule), h('td', null, m.reason),
          h('td', { class: 'num' }, M.fmtSize(m.size)),
          h('td', null, m.released ? h('span', { class: 'badge s-released' }, t('status.released')) : h('span', { class: 'badge s-quarantined' }, t('status.quarantined'))));
      }))));
  }

  async function preview(main, id) {
    const m = await M.api('GET', '/api/v1/quarantine/' + encodeURIComponent(id) + '?content=1');
    const err = M.errorBox();
    const writable = M.session.role === 'full';
    async function act(what) {
      if (!window.confirm(t(what === 'release' ? 'q.confirm.release' : 'q.confirm.delete', 1))) return;
      err.show('');
      try {
        if (what === 'release') {
          const r = await M.api('POST', '/api/v1/quarantine/' + encodeURIComponent(id) + '/release', {});
          M.notice(r.qid ? t('q.released', r.qid) : t('q.released.stopped'), 'ok');
          M.route();
        } else {
          await M.api('DELETE', '/api/v1/quarantine/' + encodeURIComponent(id));
          M.notice(t('q.deleted.n', 1), 'ok');
          M.go('quarantine');
        }
      } catch (e) { err.show(e.message); }
    }
    main.appendChild(h('p', null, h('a', { href: '#/quarantine', id: 'q-back' }, '← ' + t('back.results'))));
    const card = h('section', { class: 'card', id: 'q-preview' }, h('h1', null, t('q.preview')),
      h('dl', { class: 'kv' },
        h('dt', null, t('tr.col.subject')), h('dd', { id: 'q-p-subject' }, m.subject),
        h('dt', null, t('tr.col.sender')), h('dd', null, m.sender === '' ? '<>' : m.sender),
        h('dt', null, t('q.from')), h('dd', null, m.from),
        h('dt', null, t('tr.col.rcpt')), h('dd', null, m.rcpt),
        h('dt', null, t('tr.col.time')), h('dd', null, M.fmtTime(m.time)),
        h('dt', null, t('q.rule')), h('dd', null, m.rule),
        h('dt', null, t('q.reason')), h('dd', null, m.reason),
        h('dt', null, t('q.detections')), h('dd', null, (m.detections || []).map((d) => (d.category || '') + ': ' + (d.name || '') + (d.evidence ? ' (' + d.evidence + ')' : '')).join(', ')),
        h('dt', null, t('tr.qid')), h('dd', null, h('a', { href: '#/tracking/' + encodeURIComponent(m.qid) }, m.qid)),
        h('dt', null, t('q.state')), h('dd', { id: 'q-p-state' }, m.released ? t('q.released.at', M.fmtTime(m.released), m.released_qid || '') : t('status.quarantined'))),
      err,
      writable ? h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'q-release', disabled: !!m.released, onclick: () => act('release') }, t('q.release')),
        h('button', { type: 'button', class: 'danger', id: 'q-delete', onclick: () => act('delete') }, t('q.delete'))) : null);
    main.appendChild(card);

    const exact = typeof m.body_b64 === 'string' && typeof m.headers_b64 === 'string';
    const msg = exact ? M.parseMessage(M.fromBase64(m.headers_b64), M.fromBase64(m.body_b64), true)
      : M.parseMessage(m.headers || '', m.body || '');
    const body = h('section', { class: 'card' }, h('h2', null, t('q.content')));
    const texts = msg.parts.filter((p) => p.kind === 'text');
    const htmls = msg.parts.filter((p) => p.kind === 'html');
    const atts = msg.parts.filter((p) => p.kind === 'attachment');
    for (const p of texts) body.appendChild(h('pre', { class: 'msgtext' }, p.text));
    if (htmls.length) {
      body.appendChild(h('h3', null, t('q.html')));
      body.appendChild(h('p', { class: 'hint' }, t('q.html.hint')));
      for (const p of htmls) {
        const frame = h('iframe', { class: 'msghtml', sandbox: '', referrerpolicy: 'no-referrer', title: t('q.html') });
        frame.setAttribute('srcdoc', M.sanitizeHtml(p.text));
        body.appendChild(frame);
      }
    }
    if (!texts.length && !htmls.length) body.appendChild(h('p', { class: 'hint' }, t('q.notext')));
    if (atts.length) {
      body.appendChild(h('h3', null, t('q.attachments')));
      body.appendChild(h('ul', { id: 'q-atts' }, atts.map((a) => h('li', null, (a.filename || t('q.noname')) + ' (' + a.type + ', ' + M.fmtSize(a.size) + ' KB)'))));
    }
    if (m.body_truncated) body.appendChild(h('p', { class: 'hint' }, t('q.truncated')));
    main.appendChild(body);
    main.appendChild(h('section', { class: 'card' }, h('h2', null, t('q.headers')),
      h('pre', { class: 'headers', id: 'q-headers' }, exact ? M.bytesText(m.headers_b64) : m.headers || '')));
  }
})(window.Moat);
