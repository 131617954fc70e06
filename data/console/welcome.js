/*
 * welcome.js - onboarding in the console (docs/onboarding.md):
 *   #/setup?token=…    (link: <console_url>/#/setup?token=…) the login mail's link: choose the first password
 *                      (POST /api/v1/setup logs in), then the 2FA offer
 *   #/confirm?token=…  the wizard's e-mail confirmation link
 *                      (POST /api/v1/profile/confirm; works logged in or not)
 *   #/welcome          the tenant administrator's provisioning wizard (the
 *                      seed's プロビジョニングウィザード): 1) profile - last and
 *                      first name, e-mail address, confirmed by a mailed link
 *                      before continuing; 2) company ID and MX host; 3) add a
 *                      domain with its inbound servers and outbound
 *                      protection (M.serverTable / M.outboundFields of
 *                      domains.js; POST /api/v1/domains); 4) done: the TXT /
 *                      MX records and "verify now". Its step is the server's
 *                      (PUT /api/v1/profile {"wizard_step"}), so it resumes
 *                      after a logout; "continue later" leaves it pending.
 * The token stays in the URL fragment (never sent in a Referer or to the
 * server except in the POST body) and is removed from the address bar once
 * used.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);

  function dropToken() { history.replaceState(null, '', location.pathname + location.search + '#/'); }

  M.publicPage('setup', function (main, q) {
    const token = q.get('token') || '';
    const pass = h('input', { type: 'password', id: 'setup-password', autocomplete: 'new-password', required: true, maxlength: 256 });
    const pass2 = h('input', { type: 'password', id: 'setup-password2', autocomplete: 'new-password', required: true, maxlength: 256 });
    const err = M.errorBox();
    const btn = h('button', { type: 'submit', id: 'setup-submit' }, t('setup.submit'));
    const form = h('form', { class: 'card login', id: 'setup-form', novalidate: true },
      h('h1', null, t('setup.title')), h('p', null, t('setup.hint')),
      M.field(t('setup.password'), pass, t('setup.rule')), M.field(t('setup.password2'), pass2), err, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      if (pass.value !== pass2.value) { err.show(t('setup.mismatch')); return; }
      btn.disabled = true;
      try {
        const s = await M.api('POST', '/api/v1/setup', { token, password: pass.value });
        pass.value = pass2.value = '';
        M.session = s;
        dropToken();
        M.notice(t('setup.done'), 'ok');
        M.afterLogin(s);
      } catch (e) {
        err.show(e.status === 429 ? t('login.throttled') : e.message);
      } finally { btn.disabled = false; }
    });
    main.appendChild(form);
    pass.focus();
  });

  M.publicPage('confirm', async function (main, q) {
    const token = q.get('token') || '';
    const box = h('section', { class: 'card login', id: 'confirm-result' }, h('h1', null, t('confirm.title')));
    main.appendChild(box);
    try {
      const r = await M.api('POST', '/api/v1/profile/confirm', { token });
      dropToken();
      box.appendChild(h('p', { class: 'ok', id: 'confirm-ok' }, t('confirm.ok', r.email)));
      box.appendChild(h('p', null, t('confirm.back')));
      if (M.session) box.appendChild(h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/welcome', id: 'confirm-continue' }, t('next'))));
    } catch (e) {
      box.appendChild(h('p', { class: 'error', role: 'alert', id: 'confirm-error' }, e.status === 429 ? t('login.throttled') : e.message));
    }
  });

  M.page('welcome', async function (main) {
    if (!M.session.tenant) { main.appendChild(h('p', null, t('welcome.tenants'))); return; }
    const steps = ['wiz.s.profile', 'wiz.s.company', 'wiz.s.domain', 'wiz.s.done'];
    let prof = await M.api('GET', '/api/v1/profile');
    // the server keeps the step: the wizard resumes where it was left
    const st = { step: prof.profile_done ? Math.max(1, prof.wizard_step || 0) : 0, domain: null, sent: false };
    const nav = h('ol', { class: 'steps', id: 'welcome-steps' });
    const body = h('div', { id: 'welcome-body' });
    const skip = h('button', { type: 'button', class: 'secondary', id: 'wel-skip' }, t('welcome.skip'));
    skip.addEventListener('click', () => M.go('dashboard'));   // still pending: offered again at the next login
    main.appendChild(h('section', { class: 'card editor', id: 'welcome' }, h('h1', null, t('welcome.title')),
      h('div', { class: 'editor-grid' }, nav, body, h('div')), h('p', { class: 'hint' }, t('welcome.skip.hint'), ' ', skip)));
    function show() {
      M.clear(nav);
      steps.forEach((s, i) => nav.appendChild(h('li', { class: i === st.step ? 'current' : null }, (i + 1) + '. ' + t(s), i < st.step ? ' ✓' : '')));
      M.clear(body);
      [profile, company, domain, done][st.step]();
    }
    async function advance(step, err) {
      try {
        prof = await M.api('PUT', '/api/v1/profile', { wizard_step: step });
        st.step = step; show();
      } catch (e) { err.show(e.message); }
    }
    function profile() {
      const last = h('input', { type: 'text', id: 'wel-last', maxlength: 100, value: prof.last_name || '', autocomplete: 'family-name' });
      const first = h('input', { type: 'text', id: 'wel-first', maxlength: 100, value: prof.first_name || '', autocomplete: 'given-name' });
      const mail = h('input', { type: 'email', id: 'wel-email', maxlength: 254, value: prof.email || '' });
      const status = h('p', { id: 'wel-status', role: 'status' });
      const err = M.errorBox();
      const send = h('button', { type: 'button', id: 'wel-send' }, t('welcome.send'));
      const check = h('button', { type: 'button', class: 'secondary', id: 'wel-check' }, t('welcome.check'));
      const confirmed = () => prof.email_confirmed && prof.email.toLowerCase() === mail.value.trim().toLowerCase();
      function state() {
        status.textContent = confirmed() ? t('welcome.confirmed', prof.email) : st.sent ? t('welcome.sent', mail.value.trim()) : '';
        status.className = confirmed() ? 'ok' : '';
        check.hidden = !st.sent || confirmed();
      }
      send.addEventListener('click', async () => {
        err.show('');
        if (!last.value.trim() || !first.value.trim()) { err.show(t('welcome.names')); return; }
        try {
          const r = await M.api('PUT', '/api/v1/profile', { last_name: last.value.trim(), first_name: first.value.trim(), email: mail.value.trim() });
          prof = r;
          if (r.confirmation_sent) st.sent = true;
          if (confirmed()) { await advance(1, err); return; }
          state();
        } catch (e) { err.show(e.message); }
      });
      check.addEventListener('click', async () => {
        err.show('');
        try {
          prof = await M.api('GET', '/api/v1/profile');
          if (confirmed()) await advance(1, err); else { err.show(t('welcome.notyet')); state(); }
        } catch (e) { err.show(e.message); }
      });
      body.append(h('p', null, t('welcome.profile.hint')), M.field(t('welcome.last'), last), M.field(t('welcome.first'), first),
        M.field(t('welcome.email'), mail, t('welcome.email.hint')), status, err, h('div', { class: 'actions' }, send, check));
      state();
    }
    function company() {
      const err = M.errorBox();
      const next = h('button', { type: 'button', id: 'wel-next2' }, t('next'));
      next.addEventListener('click', () => advance(2, err));
      body.append(h('p', null, t('wiz.company.hint')),
        h('dl', { class: 'kv' }, h('dt', null, t('wiz.company')), h('dd', { id: 'wel-company' }, prof.tenant),
          h('dt', null, t('welcome.mx')), h('dd', { id: 'wel-mx' }, prof.mx_host || '')),
        h('p', { class: 'hint' }, t('welcome.company.fixed')), err, h('div', { class: 'actions' }, next));
    }
    function domain() {
      const name = h('input', { type: 'text', id: 'wel-domain', maxlength: 253, placeholder: 'example.com' });
      const servers = M.serverTable('wel', [{}]);
      const outbound = M.outboundFields('wel', null);
      const err = M.errorBox();
      const add = h('button', { type: 'button', id: 'wel-add' }, t('dom.add'));
      add.addEventListener('click', async () => {
        err.show('');
        const b = { name: name.value.trim(), inbound_servers: servers.value() };
        if (!b.inbound_servers.length) delete b.inbound_servers;   // the domain's own MX host, port 25
        const ob = outbound.value();
        if (ob.enabled || ob.sending_servers.length) b.outbound = ob;
        try {
          st.domain = await M.api('POST', '/api/v1/domains', b);
          await advance(3, err);
        } catch (e) { err.show(e.message); }
      });
      const later = h('button', { type: 'button', class: 'secondary', id: 'wel-later' }, t('welcome.later'));
      later.addEventListener('click', () => advance(3, err));
      body.append(M.field(t('dom.name'), name, t('dom.name.hint')),
        h('h2', null, t('dom.inbound')), h('p', { class: 'hint' }, t('dom.inbound.hint')), ...servers.els,
        h('h2', null, t('dom.outbound')), h('p', { class: 'hint' }, t('welcome.outbound.hint')), ...outbound.els,
        h('p', { class: 'hint' }, t('wiz.needs')), err, h('div', { class: 'actions' }, add, later));
    }
    async function done() {
      const err = M.errorBox();
      if (!st.domain) {   // resumed here: the tenant's newest domain still to verify, else any
        try {
          const ds = (await M.api('GET', '/api/v1/domains')).domains || [];
          st.domain = ds.filter((x) => !x.verified).pop() || ds[ds.length - 1] || null;
        } catch (e) { err.show(e.message); }
      }
      const d = st.domain;
      const result = h('p', { id: 'wel-verify-result', role: 'status' });
      const finish = h('button', { type: 'button', id: 'wel-finish' }, t('welcome.finish'));
      finish.addEventListener('click', async () => {
        try {
          await M.api('PUT', '/api/v1/profile', { wizard_done: true });
          M.session.wizard_pending = false;
          M.go(d ? 'domains' : 'dashboard');
        } catch (e) { err.show(e.message); }
      });
      const parts = [h('p', { id: 'wel-done' }, d ? t('wiz.done', prof.tenant, d.name) : t('welcome.nodomain'))];
      if (d) {
        const verify = h('button', { type: 'button', class: 'secondary', id: 'wel-verify' }, t('dom.verify'));
        verify.addEventListener('click', async () => {
          err.show('');
          result.textContent = '';
          try {
            const v = await M.api('POST', '/api/v1/domains/' + encodeURIComponent(d.name) + '/verify', {});
            result.textContent = v.verified ? t('dom.verified', d.name) : t('dom.notyet', d.name, v.reason || '');
          } catch (e) { err.show(e.message); }
        });
        parts.push(h('p', null, t('dom.records.todo')),
          h('table', { class: 'list', id: 'wel-records' }, h('tbody', null, (d.records || []).map((x) =>
            h('tr', null, h('td', null, x.type), h('td', null, x.name), h('td', null, h('code', null, (x.preference ? x.preference + ' ' : '') + x.value)))))),
          h('div', { class: 'actions' }, verify), result);
      }
      parts.push(err, h('div', { class: 'actions' }, finish));
      body.append(...parts);
    }
    show();
  });
})(window.Moat);
