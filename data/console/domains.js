/*
 * domains.js - the tenant's domains (GET /api/v1/domains): status
 * (needs configuration / complete), how it was verified, the TXT and MX
 * records to set, the last check, "verify now" and adding a domain.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);

  M.page('domains', async function render(main) {
    const r = await M.api('GET', '/api/v1/domains');
    const writable = M.session.role === 'full';
    const err = M.errorBox();
    const rerender = () => { M.clear(main); render(main); };
    const card = h('section', { class: 'card', id: 'domains' }, h('h1', null, t('nav.domains')), err);
    const list = r.domains || [];
    card.appendChild(h('table', { class: 'list', id: 'dom-table' },
      h('thead', null, h('tr', null, ['dom.name', 'dom.status', 'dom.via', 'dom.lastcheck', ''].map((c) => h('th', null, c ? t(c) : '')))),
      h('tbody', null, list.map((d) => {
        const verify = writable && !d.verified ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
          err.show('');
          try {
            const v = await M.api('POST', '/api/v1/domains/' + encodeURIComponent(d.name) + '/verify', {});
            M.notice(v.verified ? t('dom.verified', d.name) : t('dom.notyet', d.name, v.reason || v.result), v.verified ? 'ok' : 'error');
            rerender();
          } catch (e) { err.show(e.message); }
        } }, t('dom.verify')) : null;
        return h('tr', { 'data-domain': d.name }, h('td', null, d.name),
          h('td', null, h('span', { class: 'badge ' + (d.verified ? 's-delivered' : 's-deferred') }, t(d.verified ? 'dom.complete' : 'dom.needs'))),
          h('td', null, d.verified_via || ''), h('td', null, M.fmtTime(d.last_check), d.check_result ? ' (' + d.check_result + ')' : ''),
          h('td', null, verify));
      }))));
    for (const d of list) {
      card.appendChild(h('section', { class: 'records', 'data-domain': d.name }, h('h2', null, d.name),
        h('p', null, d.verified ? t('dom.records.done') : t('dom.records.todo')),
        h('table', { class: 'list' }, h('thead', null, h('tr', null, ['dom.rtype', 'dom.rname', 'dom.rvalue'].map((c) => h('th', null, t(c))))),
          h('tbody', null, (d.records || []).map((x) => h('tr', null, h('td', null, x.type), h('td', null, x.name),
            h('td', null, h('code', null, (x.preference ? x.preference + ' ' : '') + x.value))))))));
    }
    if (writable) {
      const name = h('input', { type: 'text', id: 'dom-new-name', maxlength: 253, placeholder: 'example.com' });
      const server = h('input', { type: 'text', id: 'dom-new-server', maxlength: 300, placeholder: '192.0.2.10:25' });
      const f = h('form', { class: 'add' }, h('h2', null, t('dom.add')),
        M.field(t('dom.name'), name, t('dom.name.hint')), M.field(t('dom.server'), server, t('dom.server.hint')),
        h('button', { type: 'submit' }, t('dom.add')));
      f.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        err.show('');
        const body = { name: name.value.trim() };
        if (server.value.trim()) body.server = server.value.trim();
        if (!M.session.tenant) { err.show(t('dom.operator')); return; }
        try { await M.api('POST', '/api/v1/domains', body); M.notice(t('saved'), 'ok'); rerender(); } catch (e) { err.show(e.message); }
      });
      card.appendChild(f);
    }
    main.appendChild(card);
  });
})(window.Moat);
