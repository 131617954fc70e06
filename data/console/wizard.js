/*
 * wizard.js - the provisioning wizard for operators (the seed's
 * プロビジョニングウィザード; its profile step is the new tenant
 * administrator's own, in welcome.js, after the login mail): 1) company ID with the availability check
 * (3-63 letters, digits and hyphens; it names the tenant's MX host), the
 * company name and administrator address; 2) the first domain and its
 * inbound server; 3) done: the TXT / MX records to set.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);

  M.page('wizard', async function (main) {
    if (M.session.tenant) { main.appendChild(h('p', null, t('wiz.operators'))); return; }
    const steps = ['wiz.s.company', 'wiz.s.domain', 'wiz.s.done'];
    const st = { step: 0, company: '', domain: null };
    const nav = h('ol', { class: 'steps', id: 'wiz-steps' });
    const body = h('div', { id: 'wiz-body' });
    main.appendChild(h('section', { class: 'card editor', id: 'wizard' }, h('h1', null, t('nav.wizard')),
      h('div', { class: 'editor-grid' }, nav, body, h('div'))));
    function show() {
      M.clear(nav);
      steps.forEach((s, i) => nav.appendChild(h('li', { class: i === st.step ? 'current' : null }, (i + 1) + '. ' + t(s), i < st.step ? ' ✓' : '')));
      M.clear(body);
      [company, domain, done][st.step]();
    }
    function company() {
      const id = h('input', { type: 'text', id: 'wiz-company', maxlength: 63, pattern: '[A-Za-z0-9-]{3,63}', value: st.company });
      const name = h('input', { type: 'text', id: 'wiz-name', maxlength: 200 });
      const mail = h('input', { type: 'email', id: 'wiz-admin', maxlength: 254 });
      const result = h('p', { id: 'wiz-check', role: 'status' });
      const err = M.errorBox();
      const check = h('button', { type: 'button', class: 'secondary', id: 'wiz-check-btn' }, t('wiz.check'));
      async function available() {
        result.textContent = '';
        if (!/^[A-Za-z0-9-]{3,63}$/.test(id.value)) { result.textContent = t('wiz.idrule'); return false; }
        try {
          const r = await M.api('GET', '/api/v1/company-ids/' + encodeURIComponent(id.value));
          result.textContent = r.available ? t('wiz.free', r.company_id) : t('wiz.taken', r.reason || '');
          result.className = r.available ? 'ok' : 'error';
          return r.available;
        } catch (e) { err.show(e.message); return false; }
      }
      check.addEventListener('click', available);
      const next = h('button', { type: 'button', id: 'wiz-next1' }, t('next'));
      next.addEventListener('click', async () => {
        err.show('');
        if (!(await available())) return;
        const b = { company_id: id.value };
        if (name.value.trim()) b.name = name.value.trim();
        if (mail.value.trim()) b.admin_email = mail.value.trim();
        try { await M.api('POST', '/api/v1/tenants', b); st.company = id.value; st.step = 1; show(); } catch (e) { err.show(e.message); }
      });
      body.append(h('p', null, t('wiz.company.hint')), M.field(t('wiz.company'), h('span', null, id, ' ', check), t('wiz.idrule')), result,
        M.field(t('wiz.name'), name), M.field(t('wiz.admin'), mail), err, h('div', { class: 'actions' }, next));
    }
    function domain() {
      const name = h('input', { type: 'text', id: 'wiz-domain', maxlength: 253, placeholder: 'example.com' });
      const server = h('input', { type: 'text', id: 'wiz-server', maxlength: 300, placeholder: '192.0.2.10:25' });
      const err = M.errorBox();
      const next = h('button', { type: 'button', id: 'wiz-next2' }, t('dom.add'));
      next.addEventListener('click', async () => {
        err.show('');
        const b = { name: name.value.trim(), tenant: st.company };
        if (server.value.trim()) b.server = server.value.trim();
        try {
          await M.api('POST', '/api/v1/domains', b);
          const r = await M.api('GET', '/api/v1/domains' + M.qs({ tenant: st.company }));
          st.domain = (r.domains || []).find((d) => d.name === b.name.toLowerCase()) || (r.domains || [])[0];
          st.step = 2; show();
        } catch (e) { err.show(e.message); }
      });
      body.append(M.field(t('dom.name'), name, t('dom.name.hint')), M.field(t('dom.server'), server, t('dom.server.hint')),
        h('p', { class: 'hint' }, t('wiz.needs')), err, h('div', { class: 'actions' }, next));
    }
    function done() {
      const d = st.domain || { records: [] };
      body.append(h('p', { id: 'wiz-done' }, t('wiz.done', st.company, d.name || '')), h('p', null, t('dom.records.todo')),
        h('table', { class: 'list', id: 'wiz-records' }, h('tbody', null, (d.records || []).map((x) =>
          h('tr', null, h('td', null, x.type), h('td', null, x.name), h('td', null, h('code', null, (x.preference ? x.preference + ' ' : '') + x.value)))))),
        h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/domains' }, t('wiz.close'))));
    }
    show();
  });
})(window.Moat);
