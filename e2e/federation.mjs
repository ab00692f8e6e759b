// Drives an upstream sign-in and the hosted sign-up in headless Chromium: the relying
// tenant's login page, its provider button, the upstream tenant's hosted login, the
// callback, and the relying tenant's consent, until the browser is back at the client
// with a code and its state; then "Create an account" and the sign-up form. A real
// browser keeps the path-scoped cookies (SameSite=Lax) across the cross-tenant redirects.
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const issuer = env('E2E_ISSUER');
const clientId = env('E2E_CLIENT_ID');
const redirectUri = env('E2E_REDIRECT_URI');
const provider = env('E2E_PROVIDER_NAME');
const email = env('E2E_EMAIL');
const password = env('E2E_PASSWORD');

const browser = await chromium.launch({
  executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});

// Opens the client's authorization request in a fresh context; answers the page and a
// function that tells where the browser landed at the client (the client is not running:
// its callback is answered here).
async function begin(state) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { landed: null };
  page.on('request', (request) => {
    if (request.url().startsWith(redirectUri)) seen.landed = request.url();
  });
  await context.route(`${redirectUri}**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/plain', body: 'client callback' }));
  const url = new URL(`${issuer}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId, response_type: 'code', scope: 'openid email', redirect_uri: redirectUri,
    state, ui_locales: 'en',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  await page.goto(url.toString());
  return { context, page, seen };
}

// Consents if asked, and checks the browser is back at the client with a code and `state`.
async function finish({ page, seen }, state, label) {
  await page.waitForLoadState().catch(() => {});
  if (!seen.landed) {
    const heading = await page.locator('h1').innerText();
    if (heading !== 'Allow access?') throw new Error(`${label}: expected consent, got "${heading}"`);
    await page.getByRole('button', { name: 'Allow' }).click();
    await page.waitForURL((u) => u.toString().startsWith(redirectUri), { timeout: 10000 }).catch(() => {});
  }
  if (!seen.landed) throw new Error(`${label}: the browser did not return to the client`);
  const back = new URL(seen.landed);
  if (!back.searchParams.get('code') || back.searchParams.get('state') !== state) {
    throw new Error(`${label}: redirect without code or state: ${seen.landed}`);
  }
}

let failures = 0;
try {
  {
    const flow = await begin('state-upstream');
    await flow.page.getByRole('button', { name: `Continue with ${provider}` }).click();
    await flow.page.waitForURL((u) => u.pathname.includes('/t/up/authorize'), { timeout: 10000 });
    const heading = await flow.page.locator('h1').innerText();
    if (heading !== 'Sign in') throw new Error(`upstream: login heading is "${heading}"`);
    await flow.page.getByLabel('Email').fill(email);
    await flow.page.getByLabel('Password').fill(password);
    await flow.page.getByRole('button', { name: 'Sign in' }).click();
    await finish(flow, 'state-upstream', 'upstream');
    console.log('upstream: signed in through the provider in Chromium and returned a code');
    await flow.context.close();
  }
  {
    const flow = await begin('state-signup');
    await flow.page.getByRole('button', { name: 'Create an account' }).click();
    await flow.page.waitForURL((u) => u.pathname.endsWith('/signup'), { timeout: 10000 });
    const heading = await flow.page.locator('h1').innerText();
    if (heading !== 'Create your account') throw new Error(`signup: heading is "${heading}"`);
    await flow.page.getByLabel('Email').fill('new.browser@example.com');
    await flow.page.getByLabel('Password').fill('a new browser password');
    await flow.page.getByLabel('First name').fill('Nova');
    await flow.page.getByRole('button', { name: 'Create account' }).click();
    await finish(flow, 'state-signup', 'signup');
    console.log('signup: created an account in Chromium and returned a code');
    await flow.context.close();
  }
} catch (error) {
  failures += 1;
  console.error(error.message);
} finally {
  await browser.close();
}
process.exit(failures ? 1 : 0);
