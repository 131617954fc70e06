/*
 * domains.js - the tenant's domains (GET /api/v1/domains): status
 * (needs configuration / complete), how it was verified, the TXT and MX
 * records to set, the last check, "verify now" and adding a domain; and
 * #/domain/{name}: the domain's settings in the tenant document - inbound
 * servers (host, port, preference), TLS to them, the recipients it accepts,
 * outbound protection and its sending servers (Microsoft 365, Google
 * Workspace, IP addresses / CIDRs) - saved with PUT /api/v1/config.
 * M.serverTable and M.outboundFields are those editors, shared with the
 * tenant administrator's wizard (welcome.js).
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
      card.appendChild(h('section', { class: 'records', 'data-domain': d.name }, h('h2', null, d.name,
        writable && M.session.tenant ? [' ', h('a', { class: 'button secondary small', href: '#/domain/' + encodeURIComponent(d.name), 'data-edit': d.name }, t('dom.edit'))] : null),
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

  // serverTable - editable inbound servers (host, port, preference; rows
  // added and removed), ids prefixed by pfx: {els, value()} (blank hosts dropped)
  M.serverTable = function (pfx, list) {
    const rows = h('tbody', { id: pfx + '-servers' });
    function serverRow(sv) {
      const host = h('input', { type: 'text', class: 'srv-host', value: sv.host || '', maxlength: 253, placeholder: 'mail.example.com' });
      const port = h('input', { type: 'number', class: 'srv-port', value: sv.port || 25, min: 1, max: 65535 });
      const pref = h('input', { type: 'number', class: 'srv-pref', value: sv.preference || 10, min: 0, max: 65535 });
      const tr = h('tr', null, h('td', null, host), h('td', null, port), h('td', null, pref),
        h('td', null, h('button', { type: 'button', class: 'link danger', onclick: () => tr.remove() }, t('delete'))));
      rows.appendChild(tr);
    }
    list.forEach(serverRow);
    return {
      els: [h('table', { class: 'list' }, h('thead', null, h('tr', null, ['dom.host', 'dom.port', 'dom.pref', ''].map((k) => h('th', null, k ? t(k) : '')))), rows),
        h('div', { class: 'actions small' }, h('button', { type: 'button', class: 'secondary', id: pfx + '-add-server', onclick: () => serverRow({}) }, t('dom.addserver')))],
      value: () => Array.from(rows.querySelectorAll('tr')).map((r) => ({
        host: r.querySelector('.srv-host').value.trim(),
        port: parseInt(r.querySelector('.srv-port').value, 10),
        preference: parseInt(r.querySelector('.srv-pref').value, 10) })).filter((x) => x.host),
    };
  };

  // outboundFields - outbound protection: enable, Microsoft 365, Google
  // Workspace, own IPs / CIDRs; ids prefixed by pfx: {els, value()}
  M.outboundFields = function (pfx, ob) {
    ob = ob || { enabled: false, sending_servers: [] };
    const ss0 = ob.sending_servers || [];
    const on = h('input', { type: 'checkbox', id: pfx + '-out', checked: !!ob.enabled });
    const ms = h('input', { type: 'checkbox', id: pfx + '-out-m365', checked: ss0.includes('microsoft365') });
    const gw = h('input', { type: 'checkbox', id: pfx + '-out-google', checked: ss0.includes('google_workspace') });
    const own = h('textarea', { id: pfx + '-out-ips', rows: 3, placeholder: '192.0.2.0/24' },
      ss0.filter((x) => x !== 'microsoft365' && x !== 'google_workspace').join('\n'));
    return {
      els: [h('label', { class: 'check' }, on, ' ', t('dom.out.enable')),
        h('label', { class: 'check' }, ms, ' Microsoft 365'), h('label', { class: 'check' }, gw, ' Google Workspace'),
        M.field(t('dom.out.ips'), own)],
      value: () => ({ enabled: on.checked,
        sending_servers: [].concat(ms.checked ? ['microsoft365'] : [], gw.checked ? ['google_workspace'] : [], M.lines(own.value)) }),
    };
  };

  M.page('domain', async function (main, args) {
    const { tenant } = await M.policyLoad();
    const i = (tenant.domains || []).findIndex((d) => d.name === args[0]);
    if (i < 0) throw new Error(t('err.nopage'));
    const d = JSON.parse(JSON.stringify(tenant.domains[i]));
    const err = M.errorBox();
    const servers = M.serverTable('dom', d.inbound_servers || []);
    const tls = M.select({ id: 'dom-tls' }, [['opportunistic', t('dom.tls.opportunistic')], ['required', t('dom.tls.required')], ['none', t('dom.tls.none')]], d.tls || 'opportunistic');
    const rcpts = h('textarea', { id: 'dom-recipients', rows: 4, placeholder: t('dom.rcpts.all') }, (d.recipients || []).join('\n'));
    const outbound = M.outboundFields('dom', d.outbound);
    const save = h('button', { type: 'button', id: 'dom-save' }, t('save'));
    save.addEventListener('click', async () => {
      err.show('');
      d.inbound_servers = servers.value();
      d.tls = tls.value;
      const rl = M.lines(rcpts.value);
      d.recipients = rl.length ? rl : null;
      d.outbound = outbound.value();
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.domains[i] = d;
      try { await M.policySave(copy); M.notice(t('saved'), 'ok'); M.go('domains'); } catch (e) { err.show(e.message); }
    });
    main.appendChild(h('section', { class: 'card', id: 'dom-editor' }, h('h1', null, t('dom.edit') + ' — ' + d.name),
      h('h2', null, t('dom.inbound')), h('p', { class: 'hint' }, t('dom.inbound.hint')), ...servers.els,
      M.field(t('dom.tls'), tls),
      M.field(t('dom.rcpts'), rcpts, t('dom.rcpts.hint')),
      h('h2', null, t('dom.outbound')), ...outbound.els,
      err, h('div', { class: 'actions' }, save, h('a', { class: 'button secondary', href: '#/domains' }, t('cancel')))));
  });
})(window.Moat);
