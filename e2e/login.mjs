// Drives the hosted login and consent pages of a running Tenantry in headless Chromium,
// in English and Spanish, and checks that the browser ends at the client's redirect URI
// with a code and the state. Configuration comes from the environment (see below).
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const issuer = env('E2E_ISSUER');
const clientId = env('E2E_CLIENT_ID');
const redirectUri = env('E2E_REDIRECT_URI');
const email = env('E2E_EMAIL');
const password = env('E2E_PASSWORD');

const texts = {
  en: { signIn: 'Sign in', email: 'Email', password: 'Password', consent: 'Allow access?', allow: 'Allow' },
  es: { signIn: 'Iniciar sesión', email: 'Correo electrónico', password: 'Contraseña', consent: '¿Permitir el acceso?', allow: 'Permitir' },
};

const browser = await chromium.launch({
  executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});
let failures = 0;
try {
  for (const lang of ['en', 'es']) {
    const t = texts[lang];
    const context = await browser.newContext();
    const page = await context.newPage();
    let landed = null;
    // The client is not running: note the request the redirect makes to it (route
    // handlers do not see redirect targets) and answer it ourselves.
    page.on('request', (request) => {
      if (request.url().startsWith(redirectUri)) landed = request.url();
    });
    await context.route(`${redirectUri}**`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' }));
    const state = `state-${lang}`;
    const url = new URL(`${issuer}/authorize`);
    url.search = new URLSearchParams({
      client_id: clientId, response_type: 'code', scope: 'openid email', redirect_uri: redirectUri,
      state, ui_locales: lang,
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
    }).toString();
    await page.goto(url.toString());
    const heading = await page.locator('h1').innerText();
    if (heading !== t.signIn) throw new Error(`${lang}: login heading is "${heading}"`);
    if ((await page.locator('html').getAttribute('lang')) !== lang) throw new Error(`${lang}: html lang`);
    await page.getByLabel(t.email).fill(email);
    await page.getByLabel(t.password).fill(password);
    await page.getByRole('button', { name: t.signIn }).click();
    await page.waitForLoadState().catch(() => {});
    if (!landed) {
      const consent = await page.locator('h1').innerText();
      if (consent !== t.consent) throw new Error(`${lang}: consent heading is "${consent}"`);
      await page.getByRole('button', { name: t.allow }).click();
      await page.waitForURL((u) => u.toString().startsWith(redirectUri), { timeout: 10000 }).catch(() => {});
    }
    if (!landed) throw new Error(`${lang}: the browser did not return to the client`);
    const back = new URL(landed);
    if (!back.searchParams.get('code') || back.searchParams.get('state') !== state) {
      throw new Error(`${lang}: redirect without code or state: ${landed}`);
    }
    console.log(`${lang}: login and consent in Chromium returned a code`);
    await context.close();
  }
} catch (error) {
  failures += 1;
  console.error(error.message);
} finally {
  await browser.close();
}
process.exit(failures ? 1 : 0);
