/*
 * policies.js - policies, inbound and outbound, and the approved / blocked
 * senders. The rules live in the tenant document (GET /api/v1/config); a
 * change edits a copy of the document and PUTs it back (the same
 * validation and messages as `moatctl import`: an invalid rule is never
 * saved, and the API's message is shown on the step it concerns).
 *
 *   #/policies/{inbound|outbound}   the rules in execution order (Moat's,
 *                                   read-only "execution_order"), status toggles
 *   #/policy/{direction}/{index|new} the editor in the seed's four steps:
 *                                   basic; recipients and senders (CSV import
 *                                   and export); criteria; actions
 *   #/senders                       approved and blocked senders, high-profile
 *                                   domains and users (BEC detection)
 */
'use strict';
(function (M) {
  const h = M.h, t = (k, ...a) => M.t(k, ...a);
  const DEFAULT_TEMPLATES = ['Virus detection', 'Attachment deleted', 'Non-delivery report', 'Message size exceeded',
    'Security settings violation', 'Rule triggered'];
  let operatorTenant = null; // the tenant an operator works on
  let etag = null;           // the version of the document loaded last (If-Match on save)

  // load - the document and the tenant object being edited (an operator's
  // first load lists every tenant; the one edited is then loaded alone, so
  // the version saved against is that tenant's)
  async function load() {
    let all = null;
    if (!M.session.tenant) {
      all = (await M.api('GET', '/api/v1/config')).tenants || [];
      if (!all.length) throw new Error(t('pol.notenant'));
      if (!all.some((x) => x.company_id === operatorTenant)) operatorTenant = all[0].company_id;
    }
    const doc = await M.api('GET', '/api/v1/config' + (M.session.tenant ? '' : M.qs({ tenant: operatorTenant })));
    etag = M.lastEtag;
    const mine = doc.tenants || [];
    if (!mine.length) throw new Error(t('pol.notenant'));
    return { all: all || mine, tenant: mine[0] };
  }
  // save - PUT the tenant document with one tenant, if nobody saved since it
  // was loaded (If-Match: 412 with the API's message otherwise); resolves to
  // the API's answer, rejects with its error
  async function save(tenant) {
    const q = !M.session.tenant ? M.qs({ tenant: tenant.company_id }) : '';
    const r = await M.api('PUT', '/api/v1/config' + q, { tenants: [tenant] }, etag ? { 'If-Match': etag } : {});
    etag = M.lastEtag;
    return r;
  }
  M.policyLoad = load;
  M.policySave = save;

  function tenantPicker(all, rerender) {
    if (M.session.tenant || all.length < 2) return null;
    const sel = M.select({ id: 'pol-tenant' }, all.map((x) => [x.company_id, x.company_id]), operatorTenant);
    sel.addEventListener('change', () => { operatorTenant = sel.value; rerender(); });
    return M.field(t('account.tenant'), sel);
  }

  // ---------------------------------------------------------------- summaries
  function criteriaSummary(c) {
    const out = [];
    if (!c) return '';
    if (c.virus) out.push(t('crit.virus'));
    if (c.spam) {
      const s = [];
      if (c.spam.level) s.push(t('crit.spam.level') + ' ' + t('level.' + c.spam.level));
      if (c.spam.phishing) s.push(t('crit.phishing'));
      if (c.spam.graymail) s.push(t('crit.graymail'));
      if (c.spam.bec && c.spam.bec.length) s.push('BEC');
      if (c.spam.web_reputation) s.push(t('crit.webrep'));
      if (c.spam.social_engineering) s.push(t('crit.social'));
      out.push(s.join(', '));
    }
    if (c.content) out.push(t('crit.content'));
    if (c.scan_exclusion && c.scan_exclusion.length) out.push(t('crit.scanexcl'));
    return out.join(' / ');
  }
  function actionSummary(a) {
    if (!a) return '';
    const out = [t('int.' + (a.intercept || 'none'))];
    if (a.intercept === 'change_recipient' && a.change_recipient) out[0] += ': ' + a.change_recipient;
    if (a.tag_subject) out.push(t('act.tag') + ': ' + a.tag_subject);
    if (a.clean) out.push(t('act.clean'));
    if (a.delete_attachments) out.push(t('act.delatt'));
    if (a.x_header) out.push(t('act.xheader'));
    if (a.stamp) out.push(t('act.stamp'));
    if (a.notify && a.notify.length) out.push(t('act.notify'));
    if (a.bcc) out.push('BCC');
    return out.join(', ');
  }
  M.criteriaSummary = criteriaSummary;

  // ---------------------------------------------------------------- the list
  M.page('policies', async function render(main, args) {
    const dir = args[0] === 'outbound' ? 'outbound' : 'inbound';
    const { all, tenant } = await load();
    const writable = M.session.role === 'full';
    const err = M.errorBox();
    const rows = (tenant.policies || []).map((p, i) => ({ p, i })).filter((x) => (x.p.direction || 'inbound') === dir);
    rows.sort((a, b) => (a.p.execution_order || 1e9) - (b.p.execution_order || 1e9) || a.i - b.i);
    const rerender = () => { M.clear(main); render(main, args); };
    async function toggle(i, btn) {
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.policies[i].enabled = !copy.policies[i].enabled;
      btn.disabled = true;
      err.show('');
      try {
        await save(copy);
        M.notice(t(copy.policies[i].enabled ? 'pol.enabled' : 'pol.disabled', copy.policies[i].name), 'ok');
        rerender();
      } catch (e) { err.show(e.message); btn.disabled = false; }
    }
    async function copyRule(i) {
      const copy = JSON.parse(JSON.stringify(tenant));
      const r = JSON.parse(JSON.stringify(tenant.policies[i]));
      delete r.execution_order; delete r.default;
      r.enabled = false;
      let name = t('pol.copyof', r.name), n = 2;
      while (copy.policies.some((p) => p.name === name)) name = t('pol.copyof', r.name) + ' ' + n++;
      r.name = name;
      copy.policies.push(r);
      try { await save(copy); M.notice(t('pol.saved', name), 'ok'); rerender(); } catch (e) { err.show(e.message); }
    }
    async function remove(i) {
      if (!window.confirm(t('pol.confirm.delete', tenant.policies[i].name))) return;
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.policies.splice(i, 1);
      try { await save(copy); M.notice(t('pol.deleted'), 'ok'); rerender(); } catch (e) { err.show(e.message); }
    }
    main.appendChild(h('section', { class: 'card', id: 'pol-list', 'data-direction': dir },
      h('h1', null, t(dir === 'inbound' ? 'nav.inbound' : 'nav.outbound')),
      tenantPicker(all, rerender),
      h('p', { class: 'hint' }, t('pol.order.hint')),
      writable ? h('div', { class: 'actions' }, h('a', { class: 'button', id: 'pol-add', href: '#/policy/' + dir + '/new' }, t('pol.add'))) : null,
      err,
      h('table', { class: 'list', id: 'pol-table' },
        h('thead', null, h('tr', null, ['pol.order', 'pol.status', 'pol.rule', 'pol.criteria', 'pol.actions', ''].map((c) => h('th', { scope: 'col' }, c ? t(c) : '')))),
        h('tbody', null, rows.map(({ p, i }) => {
          const on = p.enabled !== false;
          const btn = h('button', { type: 'button', class: 'toggle ' + (on ? 'on' : 'off'), 'aria-pressed': on ? 'true' : 'false',
            'data-rule': p.name, disabled: !writable, title: t(on ? 'pol.click.disable' : 'pol.click.enable') }, on ? t('pol.on') : t('pol.off'));
          btn.addEventListener('click', () => toggle(i, btn));
          return h('tr', { 'data-rule': p.name },
            h('td', { class: 'num' }, p.execution_order || ''),
            h('td', null, btn),
            h('td', null, h('a', { href: '#/policy/' + dir + '/' + i, class: 'pol-edit' }, p.name), p.default ? h('span', { class: 'badge' }, t('pol.default')) : null),
            h('td', null, criteriaSummary(p.criteria)),
            h('td', null, actionSummary(p.actions)),
            h('td', null, writable ? [h('button', { type: 'button', class: 'link', 'data-copy': p.name, onclick: () => copyRule(i) }, t('pol.copy')), ' ',
              h('button', { type: 'button', class: 'link danger', onclick: () => remove(i) }, t('delete'))] : null));
        }))),
      rows.length ? null : h('p', null, t('pol.none'))));
  });

  // ---------------------------------------------------------------- the editor
  function newRule(dir) {
    return { name: '', direction: dir, enabled: true, notes: '', recipients: dir === 'inbound' ? 'organization' : 'any',
      senders: dir === 'inbound' ? 'any' : 'organization', exclude_recipients: [], exclude_senders: [],
      criteria: {}, actions: { intercept: 'none', tag_skip_signed: true, notify: [] } };
  }

  function cb(label, checked, onchange, attrs) {
    const i = h('input', Object.assign({ type: 'checkbox', checked }, attrs || {}));
    i.addEventListener('change', () => onchange(i.checked));
    return h('label', { class: 'check' }, i, ' ', label);
  }
  function listBox(id, list, onchange) {
    const ta = h('textarea', { id, rows: 4, placeholder: 'user@example.com\n*@example.com' }, (list || []).join('\n'));
    ta.addEventListener('input', () => onchange(M.lines(ta.value)));
    const file = h('input', { type: 'file', accept: '.csv,text/csv,text/plain', hidden: true });
    file.addEventListener('change', async () => {
      const f = file.files[0];
      if (!f) return;
      const text = await f.text();
      const got = M.lines(text.replace(/"/g, '')).filter((s) => s.includes('@'));
      const merged = Array.from(new Set(M.lines(ta.value).concat(got)));
      ta.value = merged.join('\n');
      onchange(merged);
    });
    return h('div', { class: 'listbox' }, ta, h('div', { class: 'actions small' },
      h('button', { type: 'button', class: 'secondary', onclick: () => file.click() }, t('csv.import')),
      h('button', { type: 'button', class: 'secondary', onclick: () => M.downloadText(id + '.csv', M.lines(ta.value).join('\r\n') + '\r\n', 'text/csv') }, t('csv.export')),
      file));
  }

  const STEPS = ['step.basic', 'step.who', 'step.criteria', 'step.actions'];

  M.page('policy', async function (main, args) {
    const dir = args[0] === 'outbound' ? 'outbound' : 'inbound';
    const { tenant } = await load();
    const isNew = args[1] === 'new';
    const index = isNew ? (tenant.policies || []).length : parseInt(args[1], 10);
    if (!isNew && !(tenant.policies && tenant.policies[index])) throw new Error(t('pol.notfound'));
    const rule = isNew ? newRule(dir) : JSON.parse(JSON.stringify(tenant.policies[index]));
    delete rule.execution_order;
    rule.criteria = rule.criteria || {};
    rule.actions = rule.actions || { intercept: 'none' };
    let step = 0;
    const err = M.errorBox();
    const stepNav = h('ol', { class: 'steps', id: 'pol-steps' });
    const body = h('div', { class: 'stepbody', id: 'pol-step' });
    const summary = h('div', { class: 'summary', id: 'pol-summary' });
    const title = h('h1', null, (isNew ? t('pol.add') : t('pol.edit')) + ' — ' + t(dir === 'inbound' ? 'nav.inbound' : 'nav.outbound'));
    const saveBtn = h('button', { type: 'button', id: 'pol-save', disabled: M.session.role !== 'full' }, t('pol.submit'));
    const cancel = h('a', { class: 'button secondary', href: '#/policies/' + dir, id: 'pol-cancel' }, t('cancel'));
    const prev = h('button', { type: 'button', class: 'secondary', id: 'pol-prev' }, t('prev'));
    const next = h('button', { type: 'button', class: 'secondary', id: 'pol-next' }, t('next'));
    prev.addEventListener('click', () => show(step - 1));
    next.addEventListener('click', () => show(step + 1));
    main.appendChild(h('section', { class: 'card editor', id: 'pol-editor' }, title,
      h('div', { class: 'editor-grid' }, stepNav, h('div', null, body, err,
        h('div', { class: 'actions' }, prev, next, h('span', { class: 'spacer' }), saveBtn, cancel)), summary)));

    function local() {
      // checks the API would make too, said before the round trip
      if (!rule.name.trim()) return [0, t('pol.err.name')];
      const c = rule.criteria;
      if (!c.virus && !c.spam && !c.content && !(c.scan_exclusion && c.scan_exclusion.length)) return [2, t('pol.err.criteria')];
      if (rule.actions.intercept === 'change_recipient' && !rule.actions.change_recipient) return [3, t('pol.err.newrcpt')];
      return null;
    }
    function stepOf(msg) {
      const m = /policies\[\d+\]\.([a-z_]+)/.exec(msg || '');
      const k = m ? m[1] : '';
      if (k === 'criteria') return 2;
      if (k === 'actions') return 3;
      if (['recipients', 'senders', 'exclude_recipients', 'exclude_senders'].includes(k)) return 1;
      return 0;
    }
    function show(i) {
      step = Math.max(0, Math.min(3, i));
      M.clear(stepNav);
      STEPS.forEach((s, k) => stepNav.appendChild(h('li', { class: k === step ? 'current' : null },
        h('button', { type: 'button', class: 'link', 'data-step': k, onclick: () => show(k) }, (k + 1) + '. ' + t(s)))));
      M.clear(body);
      [stepBasic, stepWho, stepCriteria, stepActions][step](body);
      prev.disabled = step === 0;
      next.disabled = step === 3;
      renderSummary();
    }
    function renderSummary() {
      M.clear(summary);
      summary.append(h('h3', null, t('pol.summary')),
        h('p', null, h('strong', null, rule.name || '—'), ' · ', rule.enabled !== false ? t('pol.on') : t('pol.off')),
        h('p', null, t('pol.sum.rcpt'), ' ', who(rule.recipients), rule.exclude_recipients && rule.exclude_recipients.length ? ' (' + t('pol.except') + ' ' + rule.exclude_recipients.join(', ') + ')' : ''),
        h('p', null, t('pol.sum.sender'), ' ', who(rule.senders)),
        h('p', null, t('pol.sum.criteria'), ' ', criteriaSummary(rule.criteria) || '—'),
        h('p', null, t('pol.sum.actions'), ' ', actionSummary(rule.actions)));
    }
    function who(v) { return v === 'organization' ? t('who.org') : v === 'any' ? t('who.any') : (v || []).join(', '); }

    function stepBasic(b) {
      const name = h('input', { type: 'text', id: 'pol-name', value: rule.name, maxlength: 200, required: true });
      name.addEventListener('input', () => { rule.name = name.value; renderSummary(); });
      const notes = h('textarea', { id: 'pol-notes', rows: 3, maxlength: 4000 }, rule.notes || '');
      notes.addEventListener('input', () => { rule.notes = notes.value; });
      b.append(h('h2', null, t('step.basic')),
        cb(t('pol.enable'), rule.enabled !== false, (v) => { rule.enabled = v; renderSummary(); }, { id: 'pol-enabled' }),
        M.field(t('pol.name'), name), M.field(t('pol.notes'), notes),
        h('p', { class: 'hint' }, t('pol.logged')));
    }

    function whoControl(key, choices) {
      const cur = rule[key];
      const mode = typeof cur === 'string' ? cur : 'list';
      const box = h('div', { class: 'who' });
      const lb = listBox('pol-' + key, Array.isArray(cur) ? cur : [], (l) => { rule[key] = l; renderSummary(); });
      lb.hidden = mode !== 'list';
      for (const [v, label] of choices) {
        const r = h('input', { type: 'radio', name: 'who-' + key, value: v, checked: mode === v, id: 'pol-' + key + '-' + v });
        r.addEventListener('change', () => {
          lb.hidden = v !== 'list';
          rule[key] = v === 'list' ? M.lines(lb.querySelector('textarea').value) : v;
          renderSummary();
        });
        box.appendChild(h('label', { class: 'check' }, r, ' ', label));
      }
      box.appendChild(lb);
      return box;
    }
    function stepWho(b) {
      const rc = dir === 'inbound' ? [['organization', t('who.org')], ['list', t('who.list')]] : [['any', t('who.any')], ['list', t('who.list')]];
      const sc = dir === 'inbound' ? [['any', t('who.any')], ['list', t('who.list')]] : [['organization', t('who.org')], ['list', t('who.list')]];
      b.append(h('h2', null, t('step.who')),
        h('h3', null, t('pol.recipients')), whoControl('recipients', rc),
        h('h3', null, t('pol.senders')), whoControl('senders', sc),
        h('h3', null, t('pol.exclude.rcpt')), listBox('pol-exclude-rcpt', rule.exclude_recipients, (l) => { rule.exclude_recipients = l; renderSummary(); }),
        h('h3', null, t('pol.exclude.sender')), listBox('pol-exclude-sender', rule.exclude_senders, (l) => { rule.exclude_senders = l; }),
        h('p', { class: 'hint' }, t('pol.who.hint')));
    }

    function section(key, label, make, init) {
      const on = !!rule.criteria[key];
      const inner = h('div', { class: 'crit-body', hidden: !on });
      const toggle = cb(label, on, (v) => {
        if (v) rule.criteria[key] = rule.criteria[key] || init(); else delete rule.criteria[key];
        inner.hidden = !v;
        M.clear(inner);
        if (v) make(inner, rule.criteria[key]);
        renderSummary();
      }, { id: 'crit-' + key });
      if (on) make(inner, rule.criteria[key]);
      return h('fieldset', { class: 'crit' }, h('legend', null, toggle), inner);
    }
    function flag(obj, k, label, id) { return cb(label, !!obj[k], (v) => { obj[k] = v; renderSummary(); }, { id }); }
    function setMember(obj, k, v, label, id) {
      obj[k] = obj[k] || [];
      return cb(label, obj[k].includes(v), (on) => {
        obj[k] = on ? Array.from(new Set(obj[k].concat([v]))) : obj[k].filter((x) => x !== v);
        renderSummary();
      }, { id });
    }
    function stepCriteria(b) {
      b.append(h('h2', null, t('step.criteria')), h('p', { class: 'hint' }, t('pol.criteria.hint')),
        section('virus', t('crit.virus'), (el, v) => el.append(
          h('p', null, t('crit.virus.types')),
          setMember(v, 'types', 'cleanable', t('virus.cleanable'), 'virus-cleanable'),
          setMember(v, 'types', 'mass_mailing', t('virus.mass'), 'virus-mass'),
          setMember(v, 'types', 'non_mass_mailing', t('virus.nonmass'), 'virus-nonmass'),
          h('p', null, t('crit.virus.adv')),
          flag(v, 'heuristics', t('virus.heuristics'), 'virus-heuristics'),
          flag(v, 'deep_analysis', t('virus.deep'), 'virus-deep'),
          flag(v, 'macros', t('virus.macros'), 'virus-macros'),
          flag(v, 'scripts', t('virus.scripts'), 'virus-scripts')),
        () => ({ types: ['cleanable', 'mass_mailing', 'non_mass_mailing'], heuristics: true, macros: true })),
        section('spam', t('crit.spamfilter'), (el, s) => {
          const lv = M.select({ id: 'spam-level' }, [['', t('level.off')]].concat(['lowest', 'low', 'moderate', 'high', 'highest'].map((l) => [l, t('level.' + l)])), s.level || '');
          lv.addEventListener('change', () => { if (lv.value) s.level = lv.value; else delete s.level; renderSummary(); });
          el.append(M.field(t('crit.spam.level'), lv),
            h('p', null, t('crit.bec')),
            setMember(s, 'bec', 'engine', t('bec.engine'), 'bec-engine'),
            setMember(s, 'bec', 'writing_style', t('bec.style'), 'bec-style'),
            setMember(s, 'bec', 'probable', t('bec.probable'), 'bec-probable'),
            flag(s, 'phishing', t('crit.phishing'), 'spam-phishing'),
            flag(s, 'graymail', t('crit.graymail'), 'spam-graymail'),
            flag(s, 'web_reputation', t('crit.webrep'), 'spam-webrep'),
            flag(s, 'social_engineering', t('crit.social'), 'spam-social'));
        }, () => ({ level: 'moderate' })),
        section('content', t('crit.content'), contentBody, () => ({})),
        section('scan_exclusion', t('crit.scanexcl'), (el) => {
          const holder = { v: rule.criteria.scan_exclusion };
          const list = Array.isArray(rule.criteria.scan_exclusion) ? rule.criteria.scan_exclusion : [];
          rule.criteria.scan_exclusion = list;
          holder.v = list;
          for (const x of ['archive_limits', 'encrypted', 'malformed', 'scan_failure']) {
            el.appendChild(cb(t('excl.' + x), list.includes(x), (on) => {
              const cur = rule.criteria.scan_exclusion || [];
              rule.criteria.scan_exclusion = on ? Array.from(new Set(cur.concat([x]))) : cur.filter((y) => y !== x);
              renderSummary();
            }, { id: 'excl-' + x }));
          }
        }, () => ['archive_limits', 'encrypted', 'malformed']));
    }
    function contentBody(el, c) {
      const txt = (k, id, label, hint) => {
        const i = h('input', { type: 'text', id, value: (c[k] || []).join(', ') });
        i.addEventListener('input', () => { const l = M.lines(i.value); if (l.length) c[k] = l; else delete c[k]; renderSummary(); });
        return M.field(label, i, hint);
      };
      const size = (k, id, label) => {
        const i = h('input', { type: 'text', id, value: c[k] || '', placeholder: '10M' });
        i.addEventListener('input', () => { if (i.value.trim()) c[k] = i.value.trim(); else delete c[k]; });
        return M.field(label, i);
      };
      const types = h('div', { class: 'checks' }, ['executable', 'script', 'archive', 'document', 'office_macro', 'pdf', 'image', 'audio', 'video', 'html', 'text', 'disk_image']
        .map((x) => setMember(c, 'attachment_types', x, t('type.' + x), 'type-' + x)));
      const ro = h('input', { type: 'number', id: 'content-rcpts', min: 1, max: 100000, value: c.recipients_over || '' });
      ro.addEventListener('input', () => { const n = parseInt(ro.value, 10); if (n > 0) c.recipients_over = n; else delete c.recipients_over; });
      const kwBox = h('div', { id: 'content-keywords' });
      c.keywords = c.keywords || [];
      function kwRender() {
        M.clear(kwBox);
        c.keywords.forEach((k, i) => {
          const pat = h('input', { type: 'text', class: 'kw-pattern', value: k.pattern || '', maxlength: 1024, placeholder: '(?i)invoice' });
          pat.addEventListener('input', () => { k.pattern = pat.value; });
          const where = ['subject', 'body', 'headers', 'attachments'].map((w) => setMember(k, 'in', w, t('kw.' + w), null));
          kwBox.appendChild(h('div', { class: 'kw' }, pat, where,
            h('button', { type: 'button', class: 'link danger', onclick: () => { c.keywords.splice(i, 1); kwRender(); } }, t('delete'))));
        });
        kwBox.appendChild(h('button', { type: 'button', class: 'secondary', id: 'kw-add', onclick: () => { c.keywords.push({ pattern: '', in: ['subject', 'body'] }); kwRender(); } }, t('kw.add')));
      }
      kwRender();
      el.append(
        txt('attachment_extensions', 'content-ext', t('content.ext'), 'exe, js, vbs'),
        txt('attachment_names', 'content-names', t('content.names'), 'invoice*.zip'),
        h('p', null, t('content.types')), types,
        size('attachment_size_over', 'content-attsize', t('content.attsize')),
        size('message_size_over', 'content-msgsize', t('content.msgsize')),
        flag(c, 'password_protected', t('content.password'), 'content-password'),
        M.field(t('content.rcpts'), ro),
        h('p', null, t('content.keywords')), kwBox);
    }

    function stepActions(b) {
      const a = rule.actions;
      const intercept = h('div', { class: 'radios' });
      const newRcpt = h('input', { type: 'email', id: 'act-newrcpt', value: a.change_recipient || '', maxlength: 254 });
      newRcpt.addEventListener('input', () => { a.change_recipient = newRcpt.value.trim() || null; });
      for (const v of ['none', 'delete', 'deliver_now', 'quarantine', 'change_recipient']) {
        const r = h('input', { type: 'radio', name: 'intercept', value: v, checked: (a.intercept || 'none') === v, id: 'int-' + v });
        r.addEventListener('change', () => {
          a.intercept = v;
          if (v !== 'change_recipient') a.change_recipient = null; else a.change_recipient = newRcpt.value.trim() || null;
          renderSummary();
        });
        intercept.appendChild(h('label', { class: 'check' }, r, ' ', t('int.' + v), v === 'change_recipient' ? [' ', newRcpt] : null));
      }
      const opt = (k, label, id, make) => {
        const on = a[k] !== null && a[k] !== undefined && a[k] !== false && !(Array.isArray(a[k]) && !a[k].length);
        const inner = h('div', { class: 'crit-body', hidden: !on });
        if (make) make(inner);
        return h('div', null, cb(label, on, (v) => {
          inner.hidden = !v;
          if (!v) a[k] = k === 'notify' ? [] : (k === 'clean' || k === 'delete_attachments') ? false : null;
          else if (k === 'clean' || k === 'delete_attachments') a[k] = true;
          else { M.clear(inner); a[k] = defaults[k](); make(inner); }
          renderSummary();
        }, { id }), inner);
      };
      const defaults = {
        x_header: () => ({ name: 'X-Moat-Rule', value: rule.name || 'matched' }),
        stamp: () => ({ text: t('act.stamp.default') }),
        tag_subject: () => (dir === 'inbound' ? 'Spam:' : '[Moat]'),
        notify: () => [{ template: 'Rule triggered', to: ['admin'] }],
        bcc: () => '',
      };
      const tpls = DEFAULT_TEMPLATES.concat((tenant.notification_templates || []).map((x) => x.name)).filter((v, i, arr) => arr.indexOf(v) === i);
      b.append(h('h2', null, t('step.actions')), h('p', { class: 'hint' }, t('pol.logged')),
        h('fieldset', null, h('legend', null, t('act.intercept')), intercept),
        h('fieldset', null, h('legend', null, t('act.modify')),
          opt('clean', t('act.clean'), 'act-clean'),
          opt('delete_attachments', t('act.delatt'), 'act-delatt'),
          opt('x_header', t('act.xheader'), 'act-xheader', (el) => {
            const n = h('input', { type: 'text', id: 'act-xheader-name', value: (a.x_header || {}).name || '' });
            const v = h('input', { type: 'text', id: 'act-xheader-value', value: (a.x_header || {}).value || '' });
            n.addEventListener('input', () => { a.x_header.name = n.value; });
            v.addEventListener('input', () => { a.x_header.value = v.value; });
            el.append(M.field(t('act.xheader.name'), n), M.field(t('act.xheader.value'), v));
          }),
          opt('stamp', t('act.stamp'), 'act-stamp', (el) => {
            const tx = h('textarea', { id: 'act-stamp-text', rows: 3 }, (a.stamp || {}).text || '');
            tx.addEventListener('input', () => { a.stamp.text = tx.value || null; });
            el.append(M.field(t('act.stamp.text'), tx));
          }),
          opt('tag_subject', t('act.tag'), 'act-tag', (el) => {
            const tg = h('input', { type: 'text', id: 'act-tag-text', value: a.tag_subject || '', maxlength: 128 });
            tg.addEventListener('input', () => { a.tag_subject = tg.value; renderSummary(); });
            el.append(M.field(t('act.tag.text'), tg), cb(t('act.tag.signed'), a.tag_skip_signed !== false, (v) => { a.tag_skip_signed = v; }, { id: 'act-tag-signed' }));
          })),
        h('fieldset', null, h('legend', null, t('act.monitor')),
          opt('notify', t('act.notify'), 'act-notify', (el) => {
            const n = (a.notify && a.notify[0]) || { template: 'Rule triggered', to: ['admin'] };
            a.notify = a.notify && a.notify.length ? a.notify : [n];
            const sel = M.select({ id: 'act-notify-template' }, tpls.map((x) => [x, x]), n.template);
            sel.addEventListener('change', () => { a.notify[0].template = sel.value; });
            const to = h('input', { type: 'text', id: 'act-notify-to', value: (n.to || []).join(', ') });
            to.addEventListener('input', () => { a.notify[0].to = M.lines(to.value); });
            el.append(M.field(t('act.notify.template'), sel), M.field(t('act.notify.to'), to, t('act.notify.to.hint')));
          }),
          opt('bcc', 'BCC', 'act-bcc', (el) => {
            const i = h('input', { type: 'email', id: 'act-bcc-addr', value: a.bcc || '' });
            i.addEventListener('input', () => { a.bcc = i.value.trim(); });
            el.append(M.field(t('act.bcc.addr'), i));
          })));
    }

    saveBtn.addEventListener('click', async () => {
      err.show('');
      const bad = local();
      if (bad) { show(bad[0]); err.show(bad[1]); return; }
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.policies = copy.policies || [];
      const r = JSON.parse(JSON.stringify(rule));
      if (r.actions.bcc === '') r.actions.bcc = null;
      if (isNew) copy.policies.push(r); else copy.policies[index] = r;
      saveBtn.disabled = true;
      try {
        await save(copy);
        M.notice(t('pol.saved', r.name), 'ok');
        M.go('policies/' + dir);
      } catch (e) {
        const s = stepOf(e.message);
        show(s);
        err.show(e.message);
      } finally {
        saveBtn.disabled = M.session.role !== 'full';
      }
    });
    show(0);
  });

  // ---------------------------------------------------------------- approved / blocked senders
  M.page('senders', async function render(main) {
    const { all, tenant } = await load();
    const err = M.errorBox();
    const mk = (id, list) => h('textarea', { id, rows: 10, placeholder: 'partner@example.com\n*@example.com\n192.0.2.0/24' }, (list || []).join('\n'));
    const ap = mk('senders-approved', tenant.approved_senders);
    const bl = mk('senders-blocked', tenant.blocked_senders);
    const hpd = h('textarea', { id: 'hp-domains', rows: 5, placeholder: 'example.com' }, (tenant.high_profile_domains || []).join('\n'));
    const hpu = h('textarea', { id: 'hp-users', rows: 5, placeholder: '山田 太郎 <ceo@example.com>' },
      (tenant.high_profile_users || []).map((u) => (u.name ? u.name + ' ' : '') + '<' + u.address + '>').join('\n'));
    const wr = tenant.web_reputation || {};
    const wrb = h('textarea', { id: 'wr-blocked', rows: 5, placeholder: 'bad.example\nhttp://bad.example/path' }, (wr.blocked || []).join('\n'));
    const wra = h('textarea', { id: 'wr-approved', rows: 5, placeholder: 'partner.example' }, (wr.approved || []).join('\n'));
    const fpw = h('textarea', { id: 'file-passwords', rows: 5 }, (tenant.file_passwords || []).join('\n'));
    const btn = h('button', { type: 'button', id: 'senders-save', disabled: M.session.role !== 'full' }, t('save'));
    btn.addEventListener('click', async () => {
      err.show('');
      const copy = JSON.parse(JSON.stringify(tenant));
      copy.approved_senders = M.lines(ap.value);
      copy.blocked_senders = M.lines(bl.value);
      copy.high_profile_domains = M.lines(hpd.value);
      copy.web_reputation = { blocked: M.lines(wrb.value), approved: M.lines(wra.value) };
      // passwords may hold commas and spaces: one per line, as written
      copy.file_passwords = fpw.value.split(/\r?\n/).filter((l) => l.length);
      // "Name <address>" per line (a bare address: no name)
      copy.high_profile_users = hpu.value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l).map((l) => {
        const m = /^(.*?)\s*<([^<>]+)>$/.exec(l);
        return m ? { name: m[1], address: m[2].trim() } : { name: '', address: l };
      });
      try { await save(copy); M.notice(t('saved'), 'ok'); M.route(); } catch (e) { err.show(e.message); }
    });
    main.appendChild(h('section', { class: 'card', id: 'senders' }, h('h1', null, t('nav.senders')),
      tenantPicker(all, () => { M.clear(main); render(main); }),
      h('p', { class: 'hint' }, t('senders.hint')),
      h('div', { class: 'two' }, M.field(t('senders.approved', (tenant.approved_senders || []).length), ap),
        M.field(t('senders.blocked', (tenant.blocked_senders || []).length), bl)),
      h('h2', null, t('hp.title')), h('p', { class: 'hint' }, t('hp.hint')),
      h('div', { class: 'two' }, M.field(t('hp.domains'), hpd), M.field(t('hp.users'), hpu, t('hp.users.hint'))),
      h('h2', null, t('wr.title')), h('p', { class: 'hint' }, t('wr.hint')),
      h('div', { class: 'two' }, M.field(t('wr.blocked'), wrb), M.field(t('wr.approved'), wra)),
      h('h2', null, t('fp.title')), M.field(t('fp.list'), fpw, t('fp.hint')),
      err, h('div', { class: 'actions' }, btn)));
  });
})(window.Moat);
