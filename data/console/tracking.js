/*
 * tracking.js - message tracking (PRODUCT.md §5): the search form (period,
 * direction, envelope recipient and sender with * wildcards, header From,
 * action/status, subject, queue ID, sender IP), the results table (one row per recipient, newest
 * first; CSV export through the API's format=csv), and the detail of one
 * message with its timeline: received (client, TLS), detections with their
 * evidence, each rule evaluated and its result, quarantine / deletion,
 * every delivery attempt with the reply, release.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  let last = null; // the last search: {form values, results}

  const ACTIONS = ['', 'accepted', 'rejected', 'queued', 'delivered', 'deferred', 'bounced', 'quarantined', 'deleted', 'released'];

  function periodArgs(v) {
    if (v.period === 'custom') {
      const iso = (s) => (s ? new Date(s).toISOString().replace(/\.\d{3}Z$/, 'Z') : '');
      return { since: iso(v.since), until: iso(v.until) };
    }
    return { since: v.period };
  }

  function statusLabel(s) {
    if (!s) return '';
    const k = 'status.' + s;
    const l = t(k);
    return l === k ? s : l;
  }
  M.statusLabel = statusLabel;

  M.page('tracking', async function (main, args) {
    if (args[0]) return detail(main, args[0]);
    const v = (last && last.form) || { period: '24h', direction: '', rcpt: '', sender: '', from: '', action: '', subject: '', qid: '', ip: '', since: '', until: '' };
    const period = M.select({ id: 'tr-period', name: 'period' },
      [['1h', t('period.1h')], ['24h', t('period.24h')], ['7d', t('period.7d')], ['30d', t('period.30d')], ['custom', t('period.custom')]], v.period);
    const since = h('input', { type: 'datetime-local', id: 'tr-since', value: v.since });
    const until = h('input', { type: 'datetime-local', id: 'tr-until', value: v.until });
    const custom = h('span', { class: 'custom', hidden: v.period !== 'custom' }, since, ' – ', until);
    period.addEventListener('change', () => { custom.hidden = period.value !== 'custom'; });
    const rcpt = h('input', { type: 'text', id: 'tr-rcpt', value: v.rcpt, maxlength: 254, placeholder: 'user@example.com, *@example.com' });
    const sender = h('input', { type: 'text', id: 'tr-sender', value: v.sender, maxlength: 254 });
    const direction = M.select({ id: 'tr-direction' }, [['', t('all')], ['inbound', t('dir.inbound')], ['outbound', t('dir.outbound')]], v.direction);
    const from = h('input', { type: 'text', id: 'tr-from', value: v.from, maxlength: 256 });
    const action = M.select({ id: 'tr-action' }, ACTIONS.map((a) => [a, a ? statusLabel(a) : t('all')]), v.action);
    const subject = h('input', { type: 'text', id: 'tr-subject', value: v.subject, maxlength: 256 });
    const qid = h('input', { type: 'text', id: 'tr-qid', value: v.qid, maxlength: 20, pattern: '[0-9A-Fa-f]{20}' });
    const ip = h('input', { type: 'text', id: 'tr-ip', value: v.ip, maxlength: 64 });
    const err = M.errorBox();
    const results = h('div', { id: 'tr-results' });
    const csv = h('a', { id: 'tr-csv', class: 'button secondary', hidden: true, download: 'tracking.csv' }, t('csv.export'));
    const form = h('form', { class: 'card search', id: 'tr-form' },
      h('h1', null, t('title.tracking')),
      h('div', { class: 'grid' },
        M.field(t('tr.period'), h('span', null, period, custom)), M.field(t('tr.direction'), direction),
        M.field(t('tr.rcpt'), rcpt), M.field(t('tr.sender'), sender), M.field(t('tr.from'), from),
        M.field(t('tr.action'), action), M.field(t('tr.subject'), subject),
        M.field(t('tr.ip'), ip), M.field(t('tr.qid'), qid)),
      err, h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'tr-search' }, t('search')), csv));
    main.append(form, results);

    async function run() {
      const fv = { period: period.value, since: since.value, until: until.value, direction: direction.value, rcpt: rcpt.value.trim(),
        sender: sender.value.trim(), from: from.value.trim(), action: action.value, subject: subject.value.trim(),
        qid: qid.value.trim().toUpperCase(), ip: ip.value.trim() };
      const params = Object.assign(periodArgs(fv), { direction: fv.direction, rcpt: fv.rcpt, sender: fv.sender, from: fv.from,
        action: fv.action, subject: fv.subject, qid: fv.qid, ip: fv.ip, limit: 500 });
      err.show('');
      try {
        const r = await M.api('GET', '/api/v1/tracking' + M.qs(params));
        const rows = r.results || [];
        last = { form: fv, rows };
        csv.href = '/api/v1/tracking' + M.qs(Object.assign({}, params, { format: 'csv' }));
        csv.hidden = false;
        table(results, rows);
      } catch (e) { err.show(e.message); }
    }
    form.addEventListener('submit', (ev) => { ev.preventDefault(); run(); });
    if (last) table(results, last.rows); else run();
  });

  function table(box, rows) {
    M.clear(box);
    box.appendChild(h('p', { class: 'count', id: 'tr-count' }, t('results.count', rows.length)));
    if (!rows.length) return;
    const cols = ['tr.col.time', 'tr.col.sender', 'tr.col.rcpt', 'tr.col.action', 'tr.col.subject', 'tr.col.ip', 'tr.col.server', 'tr.col.size'];
    box.appendChild(h('table', { class: 'list', id: 'tr-table' },
      h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, t(c))))),
      h('tbody', null, rows.map((r) => h('tr', { 'data-qid': r.qid },
        h('td', null, h('a', { href: '#/tracking/' + encodeURIComponent(r.qid), class: 'tr-open' }, M.fmtTime(r.time))),
        h('td', null, r.sender === '' ? '<>' : r.sender),
        h('td', null, r.rcpt),
        h('td', null, h('span', { class: 'badge s-' + (r.status || r.action || '') }, statusLabel(r.status || r.action))),
        h('td', { class: 'subject' }, r.subject),
        h('td', null, r.client_ip),
        h('td', null, r.server),
        h('td', { class: 'num' }, M.fmtSize(r.size)))))));
  }

  // ---------------------------------------------------------------- detail
  const SKIP = new Set(['time', 'ts', 'event', 'rcpt', 'qid', 'recipients', 'text', 'detections']);

  function eventText(e) {
    const parts = [];
    if (e.event !== 'policy' && e.text) parts.push(e.text);
    if (e.client_ip) parts.push(t('tl.from', e.client_ip, e.helo || ''));
    if (e.tls) parts.push('TLS: ' + e.tls);
    if (e.server) parts.push(t('tl.server', e.server));
    if (e.reply) parts.push(t('tl.reply', e.reply));
    return parts.filter((x) => x).join(' · ');
  }

  function detail(main, qid) {
    return M.api('GET', '/api/v1/tracking/' + encodeURIComponent(qid)).then((d) => {
      main.appendChild(h('p', null, h('a', { href: '#/tracking', id: 'tr-back' }, '← ' + t('back.results'))));
      const card = h('section', { class: 'card', id: 'tr-detail' }, h('h1', null, t('tr.detail')),
        h('dl', { class: 'kv' },
          h('dt', null, t('tr.col.subject')), h('dd', { id: 'tr-d-subject' }, d.subject || ''),
          h('dt', null, t('tr.col.sender')), h('dd', null, d.sender === '' ? '<>' : d.sender),
          h('dt', null, t('tr.col.ip')), h('dd', null, d.client_ip || ''),
          h('dt', null, t('tr.msgid')), h('dd', null, d.message_id || ''),
          h('dt', null, t('tr.qid')), h('dd', null, h('code', null, d.qid)),
          h('dt', null, 'TLS'), h('dd', null, d.tls || t('tls.none')),
          h('dt', null, t('tr.col.size')), h('dd', null, M.fmtSize(d.size) + ' KB')));
      card.appendChild(h('h2', null, t('tr.recipients')));
      card.appendChild(h('table', { class: 'list' },
        h('thead', null, h('tr', null, ['tr.col.rcpt', 'tr.col.action', 'tr.col.server', 'tr.reply', 'tr.col.time'].map((c) => h('th', null, t(c))))),
        h('tbody', null, (d.recipients || []).map((r) => h('tr', null, h('td', null, r.rcpt),
          h('td', null, h('span', { class: 'badge s-' + (r.status || '') }, statusLabel(r.status))),
          h('td', null, r.server), h('td', null, r.reply), h('td', null, M.fmtTime(r.time)))))));
      card.appendChild(h('h2', null, t('tr.timeline')));
      const ol = h('ol', { class: 'timeline', id: 'tr-timeline' });
      for (const e of d.timeline || []) {
        const li = h('li', { class: 'ev ev-' + e.event, 'data-event': e.event },
          h('time', null, M.fmtTime(e.time)), ' ',
          h('strong', { class: 'ev-name' }, eventLabel(e.event)),
          e.rcpt ? h('span', { class: 'ev-rcpt' }, ' ' + e.rcpt) : null,
          h('div', { class: 'ev-text' }, eventText(e)));
        if (e.event === 'policy' && e.text) {
          // one event per recipient: the rules in execution order, "; " between them
          li.appendChild(h('ul', { class: 'rules' }, e.text.split('; ').map((x) => {
            const m = /^(.*?): (matched|not matched|skipped)(.*)$/.exec(x);
            return h('li', { class: m ? (m[2] === 'matched' ? 'matched' : 'not-matched') : null }, x);
          })));
        }
        const qm = e.event === 'quarantined' && /\bid ([0-9a-f]{32})\b/.exec(e.reply || '');
        if (qm) li.appendChild(h('div', null, h('a', { href: '#/quarantine/' + qm[1], class: 'tr-quarantine' }, t('tr.openq'))));
        if (Array.isArray(e.detections) && e.detections.length) {
          li.appendChild(h('ul', { class: 'detections' }, e.detections.map((x) => h('li', null,
            h('span', { class: 'badge c-' + (x.category || '') }, t('cat.' + x.category) === 'cat.' + x.category ? (x.category || '') : t('cat.' + x.category)), ' ',
            x.name || '', typeof x.score === 'number' ? ' (' + x.score.toFixed(2) + ')' : '',
            x.evidence ? h('span', { class: 'evidence' }, ' — ' + t('tl.evidence') + ': ' + x.evidence) : null))));
        }
        const extra = Object.keys(e).filter((k) => !SKIP.has(k) && !['client_ip', 'helo', 'tls', 'server', 'reply'].includes(k) && e[k] !== null && e[k] !== '');
        if (extra.length) {
          li.appendChild(h('dl', { class: 'ev-extra' }, extra.map((k) => [h('dt', null, k),
            h('dd', null, typeof e[k] === 'object' ? JSON.stringify(e[k]) : String(e[k]))])));
        }
        ol.appendChild(li);
      }
      card.appendChild(ol);
      main.appendChild(card);
    });
  }

  function eventLabel(ev) {
    const k = 'ev.' + ev;
    const l = t(k);
    return l === k ? statusLabel(ev) : l;
  }
})(window.Moat);
