// Drives Debian's headless Chromium through the relay's pages the way a
// source on a phone would: JavaScript OFF (Tor Browser at "Safest"), 360 px
// wide, Accept-Language Kazakh. Checks that / redirects (303) to /kk/, that
// the form is labelled and links the other languages, fills every field,
// attaches files, submits and checks the Kazakh success page; then submits
// an empty testimony and checks the refusal (400, role="alert" summary). No
// request may leave the relay's origin. Then, in separate contexts WITH
// JavaScript (axe-core needs it; the pages use none), runs axe-core on the
// three forms, two refused forms, the success page and a 404 page (any
// "serious" or "critical" violation fails), and checks none of them scrolls
// sideways at 360 or 320 px. Screenshots go to --out. A JSON summary goes to
// stdout; progress and failures go to stderr; the exit code is 0 only if
// every check passed.
//
// Run by tests/it/browser.rs, which starts the relay and checks the sealed batch.
// By hand, against a running relay:
//
//   node tests/browser/drive.mjs --url https://127.0.0.1:8443 \
//     --ca relay-data/tls/cert.pem --out target/browser-artifacts \
//     --file a.pdf --file b.jpg
//
// Options (all but --url, --out and one of --ca/--ignore-https-errors have
// defaults):
//   --url URL                 the relay, e.g. https://127.0.0.1:8443
//   --ca PEM                  trust exactly this certificate (its public key
//                             is pinned with Chromium's SPKI list)
//   --ignore-https-errors     trust any certificate instead
//   --out DIR                 where the screenshots go (created)
//   --file PATH               a file to attach; give it twice (or more)
//   --lang LANG               the language to submit in (kk)
//   --category KEY            category option value (prisoners)
//   --region KEY              region option value (almaty-city)
//   --month MM                events_month option value (03)
//   --year YYYY               events_year option value (default: the second
//                             year the page offers, so a choice is made)
//   --text TEXT               the testimony (default: Kazakh text + a canary)
//   --expect-received TEXT    <h1> of the success page (default: the
//                             `received-title` message of the language's
//                             crates/relay/locales/LANG/relay.ftl)
//   --chromium PATH           the browser (/usr/bin/chromium)

import { createRequire } from 'node:module';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const LANGS = ['en', 'ru', 'kk'];

/** A check that failed: the message says what was expected and what was seen. */
class CheckFailed extends Error {}

function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

function log(...parts) {
  console.error('[drive]', ...parts);
}

function usage(message) {
  console.error(`drive.mjs: ${message}\n` +
    'usage: node tests/browser/drive.mjs --url URL (--ca PEM | --ignore-https-errors) ' +
    '--out DIR --file PATH --file PATH [--lang kk] [--category KEY] [--region KEY] ' +
    '[--month MM] [--year YYYY] [--text TEXT] [--expect-received TEXT] [--chromium PATH]');
  process.exit(2);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        url: { type: 'string' },
        ca: { type: 'string' },
        'ignore-https-errors': { type: 'boolean', default: false },
        out: { type: 'string' },
        file: { type: 'string', multiple: true, default: [] },
        lang: { type: 'string', default: 'kk' },
        category: { type: 'string', default: 'prisoners' },
        region: { type: 'string', default: 'almaty-city' },
        month: { type: 'string', default: '03' },
        year: { type: 'string' },
        text: { type: 'string' },
        'expect-received': { type: 'string' },
        chromium: { type: 'string', default: '/usr/bin/chromium' },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    usage(e.message);
  }
  if (!parsed.url) usage('--url is required');
  if (!parsed.out) usage('--out is required');
  if (!parsed.ca === !parsed['ignore-https-errors']) {
    usage('give exactly one of --ca PEM and --ignore-https-errors');
  }
  if (parsed.file.length < 2) usage('attach at least two files (--file PATH twice)');
  if (!LANGS.includes(parsed.lang)) usage(`--lang must be one of ${LANGS.join(', ')}`);
  for (const f of parsed.file) {
    if (!existsSync(f)) usage(`no such file to attach: ${f}`);
  }
  if (!existsSync(parsed.chromium)) {
    console.error(`drive.mjs: no browser at ${parsed.chromium}. ` +
      'Install Debian\'s chromium (scripts/test installs it: apt-get install chromium).');
    process.exit(2);
  }
  parsed.url = parsed.url.replace(/\/+$/, '');
  parsed.text ??= 'Оны түнде алып кетті. Бізге ештеңе айтпады. ' +
    `CANARY-browser-${randomBytes(6).toString('hex')}`;
  parsed['expect-received'] ??= fluentMessage(parsed.lang, 'received-title');
  return parsed;
}

/** A single message's value from the relay's Fluent file for `lang`. */
function fluentMessage(lang, id) {
  const path = resolve(here, '../../crates/relay/locales', lang, 'relay.ftl');
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    usage(`cannot read ${path} for the expected "${id}" (${e.code}); give --expect-received`);
  }
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`${id} =`) || l.startsWith(`${id}=`));
  if (start < 0) usage(`no message "${id}" in ${path}; give --expect-received`);
  // The value, and any indented continuation lines (Fluent multiline text).
  const parts = [lines[start].slice(lines[start].indexOf('=') + 1).trim()];
  for (const l of lines.slice(start + 1)) {
    if (!/^\s+\S/.test(l) || /^\s+[.[*]/.test(l)) break;
    parts.push(l.trim());
  }
  return parts.filter(Boolean).join(' ');
}

/** Base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium pins it. */
function spkiPin(pemPath) {
  const cert = new X509Certificate(readFileSync(pemPath));
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

function normalize(s) {
  return (s ?? '').replace(/\s+/g, ' ').trim();
}

/** Every request a page makes must go to the relay's own origin. */
function watchOrigins(page, origin, foreign) {
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(`${origin}/`) && u !== origin && !u.startsWith('data:')) foreign.push(u);
  });
}

async function screenshot(page, outDir, name, shots) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  shots.push(path);
  log('screenshot', path);
}

/** Clicks the submit button and returns the response to the POST. */
async function submitForm(page, action) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === action),
    page.locator('form button[type="submit"]').click(),
  ]);
  await page.waitForLoadState('load');
  return response;
}

/** The form page: language, links to the other languages, labelled fields. */
async function checkFormPage(page, lang) {
  check(await page.locator('html').getAttribute('lang') === lang,
    `<html lang> on /${lang}/ is "${await page.locator('html').getAttribute('lang')}", expected "${lang}"`);
  check(await page.locator('script').count() === 0, `/${lang}/ has a <script> element`);
  for (const other of LANGS.filter((l) => l !== lang)) {
    const link = page.locator(`nav[aria-label] a[href="/${other}/"][hreflang="${other}"]`);
    check(await link.count() === 1,
      `/${lang}/ has no <a href="/${other}/" hreflang="${other}"> inside a <nav aria-label>`);
  }
  const form = page.locator('form');
  check(await form.count() === 1, `/${lang}/ has ${await form.count()} forms, expected 1`);
  check(await form.getAttribute('method') === 'post', 'the form\'s method is not "post"');
  check(await form.getAttribute('action') === `/${lang}/submit`,
    `the form's action is "${await form.getAttribute('action')}", expected "/${lang}/submit"`);
  check(await form.getAttribute('enctype') === 'multipart/form-data',
    'the form\'s enctype is not multipart/form-data');
  const fields = {
    category: 'select', text: 'textarea', region: 'select',
    events_month: 'select', events_year: 'select', files: 'input',
  };
  for (const [id, tag] of Object.entries(fields)) {
    const field = page.locator(`form ${tag}#${id}`);
    check(await field.count() === 1, `no <${tag} id="${id}"> in the form`);
    check(await field.getAttribute('name') === id, `<${tag} id="${id}"> has no name="${id}"`);
    const label = page.locator(`label[for="${id}"]`);
    check(await label.count() >= 1 && normalize(await label.first().textContent()) !== '',
      `#${id} has no <label for="${id}"> with text`);
  }
  check(await page.locator('#category').getAttribute('required') !== null,
    '#category is not required');
  check(await page.locator('#files').getAttribute('type') === 'file' &&
    await page.locator('#files').getAttribute('multiple') !== null,
  '#files is not <input type="file" multiple>');
  const when = page.locator('fieldset:has(#events_month):has(#events_year)');
  check(await when.count() === 1, 'month and year are not grouped in one <fieldset>');
  check(normalize(await when.locator('legend').first().textContent().catch(() => '')) !== '',
    'the month/year <fieldset> has no <legend> with text');
  check(await page.locator('form button[type="submit"]').count() === 1,
    'the form has no single <button type="submit">');
}

/** Selects `value` in `select` and checks the browser really holds it. */
async function choose(page, selector, value) {
  const values = await page.locator(`${selector} option`).all();
  const offered = [];
  for (const o of values) offered.push(await o.getAttribute('value'));
  check(offered.includes(value),
    `${selector} offers no option value "${value}" (it offers: ${offered.join(', ')})`);
  await page.locator(selector).selectOption(value);
  check(await page.locator(selector).inputValue() === value, `${selector} did not take "${value}"`);
  return offered;
}

/** The whole flow with JavaScript off; returns what was submitted. */
async function sourceFlow(browser, opts, outDir, summary) {
  const { lang } = opts;
  const context = await browser.newContext({
    javaScriptEnabled: false,
    viewport: { width: 360, height: 740 },
    deviceScaleFactor: 1,
    isMobile: true,
    hasTouch: true,
    ignoreHTTPSErrors: opts['ignore-https-errors'],
    extraHTTPHeaders: { 'Accept-Language': 'kk-KZ,kk;q=0.9,ru;q=0.8,en;q=0.5' },
  });
  context.setDefaultTimeout(30_000);
  const page = await context.newPage();
  const origin = new URL(opts.url).origin;
  const foreign = [];
  watchOrigins(page, origin, foreign);

  // The bare address sends a Kazakh speaker to /kk/.
  const landing = await page.goto(`${opts.url}/`);
  const redirect = landing.request().redirectedFrom();
  const redirectStatus = redirect ? (await redirect.response()).status() : null;
  check(redirectStatus === 303 && new URL(page.url()).pathname === '/kk/',
    `GET / with Accept-Language kk answered ${redirectStatus ?? landing.status()} and ` +
    `ended at ${new URL(page.url()).pathname}, expected a 303 to /kk/`);
  summary.redirect = { from: '/', status: redirectStatus, to: new URL(page.url()).pathname };

  const formPath = `/${lang}/`;
  const action = `/${lang}/submit`;
  const form = await page.goto(`${opts.url}${formPath}`);
  check(form.status() === 200, `GET ${formPath} answered ${form.status()}`);
  await checkFormPage(page, lang);
  await screenshot(page, outDir, `${lang}-form-empty-360`, summary.screenshots);

  // Every field, as a source would.
  await choose(page, '#category', opts.category);
  await page.locator('#text').fill(opts.text);
  const regions = await choose(page, '#region', opts.region);
  check(regions.includes(''), '#region has no empty "not said" option');
  await choose(page, '#events_month', opts.month);
  const years = (await page.locator('#events_year option').all());
  const yearValues = [];
  for (const o of years) yearValues.push(await o.getAttribute('value') ?? normalize(await o.textContent()));
  const offeredYears = yearValues.filter((v) => /^\d{4}$/.test(v));
  check(offeredYears.length > 0, `#events_year offers no year (values: ${yearValues.join(', ')})`);
  const year = opts.year ?? offeredYears[Math.min(1, offeredYears.length - 1)];
  await choose(page, '#events_year', year);
  await page.locator('#files').setInputFiles(opts.file);
  await screenshot(page, outDir, `${lang}-form-filled-360`, summary.screenshots);

  const sent = await submitForm(page, action);
  check(sent.status() === 200 || sent.status() === 303,
    `POST ${action} answered ${sent.status()}: ${normalize(await page.locator('body').textContent()).slice(0, 400)}`);
  const h1 = normalize(await page.locator('h1').first().textContent());
  check(h1 === normalize(opts['expect-received']),
    `the page after submitting has <h1> "${h1}", expected "${opts['expect-received']}"`);
  check(await page.locator('html').getAttribute('lang') === lang,
    `the success page's <html lang> is not "${lang}"`);
  await screenshot(page, outDir, `${lang}-received-360`, summary.screenshots);
  const receivedHtml = await page.content();
  const words = (await page.locator('#codename span').allTextContents()).map(normalize);

  // A reload of the success page (Tor Browser asks "Resend?", and people
  // click yes): a resent POST is "already received" and stores nothing (the
  // test counts the batch); a reload as GET gets the translated "cannot be
  // opened again" page, never a blank one.
  const again = await page.reload();
  await page.waitForLoadState('load');
  const againMethod = again ? again.request().method() : 'none';
  const againH1 = normalize(await page.locator('h1').first().textContent());
  const againExpected = againMethod === 'POST' ? 'already-title' : 'post-only-title';
  check(againH1 === normalize(fluentMessage(lang, againExpected)),
    `reloading the success page (${againMethod}) shows <h1> "${againH1}", expected ${againExpected}`);
  check(await page.locator('#codename span').count() === 0, 'a reload showed a (second) codename');
  summary.reload = { method: againMethod, status: again ? again.status() : null, title: againExpected };

  // Follow-up, still with JavaScript off: the codename shown once opens the
  // source's thread; adding testimony and logging out work; only these
  // pages set a cookie, and it is the session cookie as specified.
  check((await context.cookies()).length === 0, 'the submission path set a cookie');
  check(words.length === 8, `the success page shows ${words.length} codename words, expected 8`);
  const followPath = `/followup/${lang}/`;
  await page.goto(`${opts.url}${followPath}`);
  check(normalize(await page.locator('h1').first().textContent()) ===
    normalize(fluentMessage(lang, 'followup-title')), `${followPath} is not the codename page`);
  // A mistyped third word: the error names it, and what was typed is kept.
  const typo = [...words];
  typo[2] = `${typo[2]}x`;
  await page.locator('#codename').fill(typo.join(' '));
  const [mistyped] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === `/followup/${lang}/login`),
    page.locator(`form[action="/followup/${lang}/login"] button[type="submit"]`).click(),
  ]);
  await page.waitForLoadState('load');
  check(mistyped.status() === 400, `a mistyped codename answered ${mistyped.status()}, expected 400`);
  const isolate = (t) => normalize(t.replace(/[\u2068\u2069]/g, ''));
  const wordError = isolate(fluentMessage(lang, 'codename-error-word').replace(/\{\s*\$n\s*\}/, '3'));
  const bodyText = isolate(await page.locator('body').textContent());
  check(bodyText.includes(wordError), `the mistyped log-in does not say "${wordError}"`);
  const kept = normalize(await page.locator('#codename').inputValue());
  check(kept === typo.join(' '), `the codename box holds "${kept}", expected what was typed`);
  summary.mistyped = { status: mistyped.status(), kept: kept === typo.join(' ') };
  await page.locator('#codename').fill(`  ${words.join('  ').toUpperCase()} `);
  const [login] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === `/followup/${lang}/login`),
    page.locator(`form[action="/followup/${lang}/login"] button[type="submit"]`).click(),
  ]);
  await page.waitForLoadState('load');
  check(login.status() === 303, `the codename log-in answered ${login.status()}, expected 303`);
  const threadTitle = normalize(await page.locator('h1').first().textContent());
  check(threadTitle === normalize(fluentMessage(lang, 'thread-title')),
    `after the log-in the page has <h1> "${threadTitle}"`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'followup');
  check(cookies.length === 1 && !!session, `expected one "followup" cookie, got ${JSON.stringify(cookies)}`);
  if (session) {
    check(session.httpOnly && session.sameSite === 'Strict' && session.path === '/followup' &&
      session.secure === opts.url.startsWith('https:'),
    `the session cookie's attributes are wrong: ${JSON.stringify(session)}`);
  }
  await screenshot(page, outDir, `${lang}-thread-360`, summary.screenshots);
  const threadHtml = await page.content();
  await page.locator('form[action$="/submit"] #text').fill('Follow-up from the browser test.');
  const [added] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === `/followup/${lang}/submit`),
    page.locator(`form[action="/followup/${lang}/submit"] button[type="submit"]`).click(),
  ]);
  await page.waitForLoadState('load');
  check(added.status() === 303, `adding to the thread answered ${added.status()}, expected 303`);
  check(normalize(await page.locator('.notice').first().textContent().catch(() => '')) ===
    normalize(fluentMessage(lang, 'thread-added')), 'no "added" notice after adding to the thread');
  const [out] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' &&
      new URL(r.url()).pathname === `/followup/${lang}/logout`),
    page.locator(`form[action="/followup/${lang}/logout"] button[type="submit"]`).click(),
  ]);
  await page.waitForLoadState('load');
  check(out.status() === 200, `log-out answered ${out.status()}`);
  check((await context.cookies()).length === 0, 'the session cookie is still there after log-out');
  summary.followup = {
    codename_words: words.length,
    login: login.status(),
    thread_title: threadTitle,
    cookie: session ? { httpOnly: session.httpOnly, sameSite: session.sameSite, path: session.path, secure: session.secure } : null,
    added: added.status(),
    logout: out.status(),
  };

  // A refused testimony: a category but no text and no file. The browser
  // lets it through (only the category is required); the relay refuses it.
  await page.goto(`${opts.url}${formPath}`);
  await choose(page, '#category', opts.category);
  const refused = await submitForm(page, action);
  check([400, 413].includes(refused.status()),
    `an empty testimony was answered ${refused.status()}, expected 400`);
  const alert = page.locator('[role="alert"]');
  check(await alert.count() >= 1, 'the refused form has no error summary (role="alert")');
  const alertText = normalize(await alert.first().textContent());
  check(alertText !== '', 'the error summary is empty');
  check(await page.locator('form #category').count() === 1,
    'the refused page does not show the form again');
  check(await page.locator('html').getAttribute('lang') === lang,
    `the refused page's <html lang> is not "${lang}"`);
  await screenshot(page, outDir, `${lang}-refused-360`, summary.screenshots);

  check(foreign.length === 0, `pages asked for things from elsewhere: ${foreign.join(', ')}`);
  await context.close();
  summary.submitted = {
    language: lang,
    category: opts.category,
    region: opts.region,
    events_month: `${year}-${opts.month}`,
    text: opts.text,
    files: opts.file.map((f) => basename(f)),
    received_title: h1,
    status: sent.status(),
  };
  summary.refused = { status: refused.status(), alert: alertText };
  return { receivedHtml, threadHtml };
}

/** axe-core on every page, and the 320 px check, in contexts WITH JavaScript. */
async function auditPages(browser, opts, { receivedHtml, threadHtml }, outDir, summary) {
  const axePath = require.resolve('axe-core/axe.min.js');
  const ctxOptions = {
    javaScriptEnabled: true,
    // The relay's CSP (rightly) forbids inline script; axe is ours, not the page's.
    bypassCSP: true,
    ignoreHTTPSErrors: opts['ignore-https-errors'],
  };
  // kind: form (GET /LANG/), refused (an empty form POSTed), received (the
  // success page exactly as the JavaScript-off browser got it), missing (404).
  const pages = [];
  for (const lang of LANGS) pages.push({ name: `/${lang}/`, lang, kind: 'form', shot: `${lang}-form` });
  pages.push({ name: '/en/submit (refused: nothing chosen)', lang: 'en', kind: 'refused' });
  pages.push({
    name: `/${opts.lang}/submit (refused: nothing chosen)`, lang: opts.lang, kind: 'refused',
    shot: `${opts.lang}-refused`,
  });
  pages.push({
    name: `/${opts.lang}/submit (received)`, lang: opts.lang, kind: 'received',
    shot: `${opts.lang}-received`,
  });
  pages.push({ name: `/${opts.lang}/no-such-page (404)`, lang: opts.lang, kind: 'missing' });
  for (const lang of LANGS) {
    pages.push({ name: `/followup/${lang}/`, lang, kind: 'login', shot: `${lang}-followup` });
  }
  pages.push({
    name: `/followup/${opts.lang}/ (thread)`, lang: opts.lang, kind: 'thread',
    shot: `${opts.lang}-thread`,
  });

  for (const width of [360, 320]) {
    const context = await browser.newContext({ ...ctxOptions, viewport: { width, height: 740 } });
    context.setDefaultTimeout(30_000);
    const page = await context.newPage();
    for (const p of pages) {
      if (width === 320 && !p.shot) continue;
      if (p.kind === 'missing') {
        const res = await page.goto(`${opts.url}/${p.lang}/no-such-page`);
        check(res.status() === 404, `GET /${p.lang}/no-such-page answered ${res.status()}, expected 404`);
      } else {
        const path = ['login', 'thread'].includes(p.kind) ? `/followup/${p.lang}/` : `/${p.lang}/`;
        const res = await page.goto(`${opts.url}${path}`);
        check(res.status() === 200, `GET ${path} answered ${res.status()}`);
      }
      if (p.kind === 'received') {
        // Same origin, same stylesheet, the same HTML; only now axe can run in it.
        await page.setContent(receivedHtml, { waitUntil: 'load' });
      }
      if (p.kind === 'thread') {
        await page.setContent(threadHtml, { waitUntil: 'load' });
      }
      if (p.kind === 'refused') {
        // Skip the browser's own check of `required` (if any) to reach the relay's.
        await page.evaluate(() => { document.querySelector('form').noValidate = true; });
        const r = await submitForm(page, `/${p.lang}/submit`);
        check([400, 413].includes(r.status()),
          `an empty form posted to /${p.lang}/submit was answered ${r.status()}, expected 400`);
        check(await page.locator('[role="alert"]').count() >= 1,
          `the refused /${p.lang}/ form has no role="alert" summary`);
        const first = await page.evaluate(() => {
          const alert = document.querySelector('[role="alert"]');
          const form = document.querySelector('form');
          // eslint-disable-next-line no-bitwise
          return !!alert && !!form && !!(alert.compareDocumentPosition(form) & Node.DOCUMENT_POSITION_FOLLOWING);
        });
        check(first, `the error summary on the refused /${p.lang}/ form does not come before the form`);
      }
      const key = `${p.name} @${width}px`;
      const overflow = await page.evaluate(() => {
        const doc = document.documentElement;
        const wide = [];
        for (const el of document.body.querySelectorAll('*')) {
          const r = el.getBoundingClientRect();
          if (r.right > doc.clientWidth + 0.5) {
            wide.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} (right edge ${Math.round(r.right)} px)`);
          }
        }
        return { scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, wide: wide.slice(0, 10) };
      });
      summary.widths[key] = overflow;
      if (overflow.scrollWidth > overflow.clientWidth) {
        summary.failures.push(`${key} scrolls sideways: ${overflow.scrollWidth} px of content in ` +
          `${overflow.clientWidth} px; too wide: ${overflow.wide.join(', ')}`);
      }
      if (width === 320) {
        await screenshot(page, outDir, `${p.shot}-320`, summary.screenshots);
        continue;
      }
      await page.addScriptTag({ path: axePath });
      const result = await page.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return {
          version: r.testEngine.version,
          violations: r.violations.map((v) => ({
            id: v.id,
            impact: v.impact,
            help: v.help,
            helpUrl: v.helpUrl,
            nodes: v.nodes.map((n) => ({
              target: n.target.join(' '),
              html: n.html,
              summary: n.failureSummary,
            })),
          })),
        };
      });
      summary.axe.version = result.version;
      summary.axe.pages[p.name] = result.violations;
      for (const v of result.violations) {
        const line = `axe ${v.impact} ${v.id} on ${p.name}: ${v.help} (${v.nodes.length} element(s))`;
        log(line);
        for (const n of v.nodes) log(`    ${n.target}: ${n.html}\n      ${(n.summary ?? '').replace(/\n/g, '\n      ')}`);
        if (v.impact === 'serious' || v.impact === 'critical') summary.failures.push(line);
      }
    }
    await context.close();
  }
}

async function main() {
  const opts = options();
  const started = Date.now();
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  const summary = {
    ok: false,
    url: opts.url,
    screenshots: [],
    redirect: null,
    submitted: null,
    refused: null,
    widths: {},
    axe: { version: null, pages: {} },
    failures: [],
    seconds: null,
  };

  const args = [
    '--no-sandbox', // we run as root in CI; the sandbox refuses to start as root
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
  ];
  if (opts.ca) args.push(`--ignore-certificate-errors-spki-list=${spkiPin(opts.ca)}`);

  const { chromium } = require('playwright-core');
  // Playwright starts Chromium with a new, empty --user-data-dir of its own
  // and deletes it on close: nothing carries over between runs.
  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    args,
    timeout: 60_000,
  });
  try {
    summary.chromium = browser.version();
    const flowHtml = await sourceFlow(browser, opts, outDir, summary);
    await auditPages(browser, opts, flowHtml, outDir, summary);
  } catch (e) {
    // Playwright colours its call logs for a terminal; the summary is JSON.
    const message = e.message.replace(/\x1b\[[0-9;]*m/g, '');
    summary.failures.push(e instanceof CheckFailed ? message : `${e.name}: ${message}`);
  } finally {
    await browser.close().catch(() => {});
  }
  summary.seconds = Math.round((Date.now() - started) / 100) / 10;
  summary.ok = summary.failures.length === 0;
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  if (!summary.ok) {
    console.error(`drive.mjs: ${summary.failures.length} check(s) failed:`);
    for (const f of summary.failures) console.error(`  - ${f}`);
    process.exit(1);
  }
  log(`all checks passed in ${summary.seconds} s`);
}

main().catch((e) => {
  console.error(`drive.mjs: ${e.stack ?? e}`);
  process.exit(1);
});
