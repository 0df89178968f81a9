// Fills the relay's XForm in a real ODK form engine, in Debian's headless
// Chromium with JavaScript ON: @getodk/xforms-engine, the engine of ODK Web
// Forms (what ODK Central serves to browsers), bundled with esbuild and run
// in the page. It loads the form, picks the translation, answers the
// questions and attaches files through the engine's own API, and asks the
// engine for its submission (`prepareInstancePayload`): the instance XML it
// serialises and the attachments, exactly what Web Forms would POST. That
// payload goes to stdout as JSON; tests/it/openrosa.rs posts it to the relay
// and opens the result with the reviewer.
//
//   node tests/browser/odk-engine.mjs --xform relay-testimony.xml --lang kk \
//     --answer category=prisoners --answer text="…" --file photo_1=photo.jpg
//
// Options: --xform FILE (required), --lang LANG (kk), --answer NAME=VALUE
// (repeatable; a question's element name), --file NAME=PATH (repeatable; an
// upload question), --chromium PATH (/usr/bin/chromium). The page makes no
// network request: the form is handed to it as text.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

const { values: opts } = parseArgs({
  options: {
    xform: { type: 'string' },
    lang: { type: 'string', default: 'kk' },
    answer: { type: 'string', multiple: true, default: [] },
    file: { type: 'string', multiple: true, default: [] },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!opts.xform) {
  console.error('odk-engine.mjs: --xform FILE is required');
  process.exit(2);
}
const pairs = (list) =>
  Object.fromEntries(
    list.map((kv) => {
      const i = kv.indexOf('=');
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
const answers = pairs(opts.answer);
const files = Object.fromEntries(
  Object.entries(pairs(opts.file)).map(([name, path]) => [
    name,
    { name: basename(path), b64: readFileSync(path).toString('base64') },
  ]),
);

// What runs in the page: the engine and a small driver over its API.
const PAGE = `
import { createInstance } from '@getodk/xforms-engine';

const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const base64 = (buffer) => {
  let s = '';
  for (const b of new Uint8Array(buffer)) s += String.fromCharCode(b);
  return btoa(s);
};

window.fillForm = async (xml, lang, answers, files) => {
  const form = await createInstance(xml);
  const root = form.root;
  const language = root.languages.find((l) => l.language.endsWith('(' + lang + ')'));
  if (!language) throw new Error('no translation for ' + lang + ': ' + root.languages.map((l) => l.language));
  root.setLanguage(language);
  const seen = [];
  const visit = (node) => {
    const name = node.currentState.reference.split('/').pop();
    if (node.nodeType === 'select' && name in answers) {
      node.selectValue(answers[name]);
      seen.push(name);
    } else if (node.nodeType === 'input' && name in answers) {
      const v = answers[name];
      node.setValue(node.valueType === 'int' ? Number(v) : v);
      seen.push(name);
    } else if (node.nodeType === 'upload' && name in files) {
      const f = files[name];
      node.setValue(new File([bytes(f.b64)], f.name, { type: 'application/octet-stream' }));
      seen.push(name);
    }
    for (const child of node.currentState.children ?? []) visit(child);
  };
  visit(root);
  const payload = await root.prepareInstancePayload();
  const out = {
    status: payload.status,
    answered: seen,
    violations: JSON.stringify(payload.violations ?? null),
    parts: [],
  };
  for (const [name, value] of payload.data[0].entries()) {
    if (typeof value === 'string') {
      out.parts.push({ name, text: value });
    } else {
      out.parts.push({ name, fileName: value.name, type: value.type, b64: base64(await value.arrayBuffer()) });
    }
  }
  return out;
};
`;

const esbuild = require('esbuild');
const bundle = esbuild.buildSync({
  stdin: { contents: PAGE, resolveDir: here, loader: 'js' },
  bundle: true,
  write: false,
  format: 'esm',
  platform: 'browser',
  logLevel: 'error',
});

const { chromium } = require('playwright-core');
const browser = await chromium.launch({
  executablePath: opts.chromium,
  headless: true,
  args: ['--disable-dev-shm-usage', '--no-first-run'],
  timeout: 60_000,
});
let code = 1;
try {
  const page = await browser.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  // A secure context (the engine makes the instanceID with
  // crypto.randomUUID), answered by Playwright itself: nothing goes out.
  await page.route('https://engine.invalid/**', (route) =>
    route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>ODK engine</title>' }),
  );
  await page.goto('https://engine.invalid/');
  // A module: the engine awaits its XPath parser at the top level.
  await page.addScriptTag({ content: bundle.outputFiles[0].text, type: 'module' });
  await page.waitForFunction(() => typeof window.fillForm === 'function', null, { timeout: 30_000 });
  const xml = readFileSync(opts.xform, 'utf8');
  const result = await page.evaluate(
    ([xml, lang, answers, files]) => window.fillForm(xml, lang, answers, files),
    [xml, opts.lang, answers, files],
  );
  result.engine = JSON.parse(
    readFileSync(`${here}/node_modules/@getodk/xforms-engine/package.json`, 'utf8'),
  ).version;
  result.chromium = browser.version();
  result.requests = requests;
  console.log(JSON.stringify(result));
  code = result.status === 'ready' ? 0 : 1;
} catch (e) {
  console.error('odk-engine.mjs:', e.message);
} finally {
  await browser.close();
}
process.exit(code);
