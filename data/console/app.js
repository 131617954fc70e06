/*
 * app.js - the console's frame: session, login (password, then the TOTP
 * code when the account has one), the header navigation, the language
 * switch and the hash router (#/tracking, #/quarantine, #/policies/inbound,
 * ...). Pages register with Moat.page(name, render); render(main, args)
 * builds the page into main.
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  const pages = {}, publicPages = {};
  M.page = function (name, render) { pages[name] = render; };
  // publicPage - a page shown with or without a session (the onboarding links);
  // render(main, URLSearchParams of the fragment's ?query)
  M.publicPage = function (name, render) { publicPages[name] = render; };

  const NAV = [
    ['dashboard', 'nav.dashboard'],
    ['tracking', 'nav.tracking'],
    ['quarantine', 'nav.quarantine'],
    ['policies/inbound', 'nav.inbound'],
    ['policies/outbound', 'nav.outbound'],
    ['senders', 'nav.senders'],
    ['templates', 'nav.templates'],
    ['domains', 'nav.domains'],
    ['admins', 'nav.admins'],
    ['endusers', 'nav.endusers'],
    ['audit', 'nav.audit'],
    ['account', 'nav.account'],
  ];

  function renderHeader() {
    const nav = M.clear(document.getElementById('nav'));
    const who = document.getElementById('who');
    const logout = document.getElementById('logout');
    const route = (location.hash || '').replace(/^#\/?/, '');
    if (M.session) {
      const extra = M.session.tenant ? (M.session.wizard_pending ? [['welcome', 'nav.welcome']] : []) : [['wizard', 'nav.wizard']];
      for (const [r, key] of NAV.concat(extra)) {
        const cur = route === r || route.startsWith(r + '/') || (r.startsWith('policies/') && route.startsWith('policy/' + r.slice(9)));
        nav.appendChild(h('a', { href: '#/' + r, class: cur ? 'current' : null, 'aria-current': cur ? 'page' : null }, t(key)));
      }
      who.textContent = M.session.email + (M.session.tenant ? ' (' + M.session.tenant + ')' : ' (' + t('who.operator') + ')') +
        (M.session.role === 'read-only' ? ' · ' + t('who.readonly') : '');
      who.title = who.textContent;
      logout.hidden = false;
      logout.textContent = t('logout');
    } else {
      who.textContent = '';
      logout.hidden = true;
    }
    document.getElementById('lang').value = M.lang;
    document.documentElement.lang = M.lang;
  }

  M.go = function (route) {
    if (location.hash === '#/' + route) M.route(); else location.hash = '#/' + route;
  };

  M.route = async function () {
    const main = document.getElementById('main');
    renderHeader();
    let route = (location.hash || '').replace(/^#\/?/, '');
    const qi = route.indexOf('?');
    const query = new URLSearchParams(qi >= 0 ? route.slice(qi + 1) : '');
    if (qi >= 0) route = route.slice(0, qi);
    if (publicPages[route]) {
      M.clear(main);
      document.title = 'Moat - ' + t('title.' + route);
      await publicPages[route](main, query);
      return;
    }
    if (!M.session) { M.clear(main); renderLogin(main); return; }
    if (M.session.totp_enrolment_required) { M.clear(main); pages['totp'](main, []); return; }
    if (!route) route = M.session.wizard_pending ? 'welcome' : 'dashboard';
    const parts = route.split('/').map((p) => { try { return decodeURIComponent(p); } catch (e) { return p; } });
    const render = pages[parts[0]];
    M.clear(main);
    if (!render) { main.appendChild(h('p', null, t('err.nopage'))); return; }
    document.title = 'Moat - ' + t('title.' + parts[0]);
    try {
      await render(main, parts.slice(1));
    } catch (e) {
      if (e.status === 401) return;
      main.appendChild(h('div', { class: 'error', role: 'alert' }, e.message));
    }
  };

  M.onSessionLost = function () {
    if (!M.session) return;
    M.session = null;
    M.notice(t('session.expired'), 'error');
    M.route();
  };

  // ---------------------------------------------------------------- login
  function renderLogin(main) {
    document.title = 'Moat - ' + t('login.title');
    const email = h('input', { type: 'email', id: 'login-email', name: 'email', autocomplete: 'username', required: true, maxlength: 254 });
    const pass = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true, maxlength: 256 });
    const code = h('input', { type: 'text', id: 'login-totp', name: 'totp', autocomplete: 'one-time-code', inputmode: 'numeric', maxlength: 11, pattern: '[0-9a-z-]{6,11}' });
    const codeRow = M.field(t('login.totp'), code, t('login.totp.hint'));
    codeRow.hidden = true;
    const err = M.errorBox();
    const btn = h('button', { type: 'submit', id: 'login-submit' }, t('login.submit'));
    const form = h('form', { class: 'card login', id: 'login-form', novalidate: true },
      h('h1', null, t('login.title')),
      M.field(t('login.email'), email), M.field(t('login.password'), pass), codeRow, err, btn);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.show('');
      const body = { email: email.value.trim(), password: pass.value };
      if (!codeRow.hidden && code.value.trim()) body.totp = code.value.trim();
      btn.disabled = true;
      try {
        const s = await M.api('POST', '/api/v1/session', body);
        M.session = s;
        pass.value = '';
        M.notice('', 'info');
        M.afterLogin(s);
      } catch (e) {
        if (e.data && e.data.totp_required) {
          codeRow.hidden = false;
          err.show(codeRow.dataset.asked ? e.message : t('login.need.totp'));
          codeRow.dataset.asked = '1';
          code.focus();
        } else {
          err.show(e.status === 429 ? t('login.throttled') : e.message);
        }
      } finally {
        btn.disabled = false;
      }
    });
    main.appendChild(form);
    email.focus();
  }

  // afterLogin - where a fresh session goes: 2FA enrolment (forced or
  // offered), the provisioning wizard for a new tenant administrator, else
  // the page asked for (or the dashboard)
  M.afterLogin = function (s) {
    if (s.totp_enrolment_required) M.go('totp');
    else if (s.totp_recommended && sessionStorage.getItem('moat.skip2fa') !== s.email) M.go('totp-intro');
    else if (s.wizard_pending) M.go('welcome');
    else if (!location.hash || location.hash === '#/' || location.hash === '#/login') M.go('dashboard');
    else M.route();
  };

  // ---------------------------------------------------------------- start
  async function logout() {
    try { await M.api('DELETE', '/api/v1/session'); } catch (e) { /* gone already */ }
    M.session = null;
    location.hash = '#/';
    M.route();
  }

  M.start = async function () {
    M.setLang(localStorage.getItem('moat.lang') || 'ja');
    document.getElementById('lang').addEventListener('change', (ev) => {
      M.setLang(ev.target.value);
      localStorage.setItem('moat.lang', M.lang);
      M.route();
    });
    document.getElementById('logout').addEventListener('click', logout);
    window.addEventListener('hashchange', () => M.route());
    try {
      M.session = await M.api('GET', '/api/v1/session');
    } catch (e) {
      M.session = null;
    }
    M.route();
  };
})(window.Moat);
