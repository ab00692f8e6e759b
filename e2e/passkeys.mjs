// Passkeys in headless Chromium with the DevTools virtual authenticator (WebAuthn.enable,
// WebAuthn.addVirtualAuthenticator): a passkey added on the hosted account page, then
// the hosted login with it — by the email field's autofill
// (conditional mediation), by the button, and as the second factor after a password —
// and a new account signed up on the hosted page with a passkey and no password.
// Prints one `code <mode> <code>` line per sign-in for the caller to redeem, and keeps
// screenshots of the pages in E2E_ARTIFACTS.
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};
const issuer = env('E2E_ISSUER');
const slug = env('E2E_SLUG');
const clientId = env('E2E_CLIENT_ID');
const redirectUri = env('E2E_REDIRECT_URI');
const email = env('E2E_EMAIL');
const password = env('E2E_PASSWORD');
const artifacts = env('E2E_ARTIFACTS');
const newcomer = env('E2E_SIGNUP_EMAIL');
mkdirSync(artifacts, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.E2E_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
});

const authorizeUrl = (state) => {
  const url = new URL(`${issuer}/authorize`);
  url.search = new URLSearchParams({
    client_id: clientId, response_type: 'code', scope: 'openid email', redirect_uri: redirectUri,
    state, prompt: 'login',
    code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256',
  }).toString();
  return url.toString();
};

let failures = 0;
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Where the browser is sent back to the client (a page that answers, so the navigation
  // completes before the next one starts).
  let landed = null;
  page.on('request', (request) => {
    if (request.url().startsWith(redirectUri)) landed = request.url();
  });
  if (process.env.E2E_DEBUG) {
    page.on('requestfailed', (r) => console.log('FAILED', r.url(), r.failure()?.errorText));
    page.on('framenavigated', (f) => console.log('NAV', f.url()));
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true,
      isUserVerified: true, automaticPresenceSimulation: true,
    },
  });

  const returned = async (mode, state) => {
    await page.waitForURL((u) => u.toString().startsWith(redirectUri), { timeout: 15000 }).catch(() => {});
    if (!landed) throw new Error(`${mode}: the browser did not return to the client (at ${page.url()})`);
    const back = new URL(landed);
    if (back.searchParams.get('state') !== state || !back.searchParams.get('code')) {
      throw new Error(`${mode}: redirect without code or state: ${landed}`);
    }
    console.log(`code ${mode} ${back.searchParams.get('code')}`);
    await page.waitForLoadState('load');
    landed = null;
  };

  // Register a passkey on the account page: signed in there with the password (a login
  // made for the page is the fresh proof adding a passkey needs), then signed out.
  await page.goto(authorizeUrl('register'));
  await page.screenshot({ path: `${artifacts}/login.png`, fullPage: true });
  await page.goto(`${issuer}/account`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Your account' }).waitFor();
  await page.locator('#passkey_name').fill('Chromium');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await page.getByText('The passkey is added.').waitFor();
  await page.getByText('Chromium', { exact: true }).waitFor();
  await page.screenshot({ path: `${artifacts}/account.png`, fullPage: true });
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByText('You are signed out.').waitFor();
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  if (credentials.length !== 1 || !credentials[0].isResidentCredential) {
    throw new Error(`the authenticator holds ${JSON.stringify(credentials)}`);
  }
  console.log('registered a discoverable passkey');

  // Autofill: the page starts a conditional request at load; the virtual authenticator
  // (user present and verified) answers it without a click.
  const conditional = await page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable());
  await page.goto(authorizeUrl('autofill'));
  if (conditional) {
    await returned('autofill', 'autofill');
  } else {
    console.log('conditional mediation not available in this browser');
  }

  // The button, in a browser without conditional mediation (the plain path).
  await page.addInitScript(() => {
    PublicKeyCredential.isConditionalMediationAvailable = async () => false;
  });
  await page.goto(authorizeUrl('button'));
  await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
  await returned('button', 'button');

  // Password, then the passkey as the second factor (the account has no authenticator app).
  await page.goto(authorizeUrl('second'));
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Use a passkey' }).waitFor();
  await page.screenshot({ path: `${artifacts}/second-factor.png`, fullPage: true });
  await page.getByRole('button', { name: 'Use a passkey' }).click();
  await returned('second-factor', 'second');

  // A newcomer signs up with a passkey: the sign-up form, then the page that makes it.
  await context.clearCookies();
  await page.goto(authorizeUrl('signup'));
  await page.getByRole('button', { name: 'Create an account' }).click();
  await page.getByLabel('Email').fill(newcomer);
  await page.getByRole('button', { name: 'Sign up with a passkey' }).click();
  await page.getByRole('button', { name: 'Create passkey' }).waitFor();
  await page.screenshot({ path: `${artifacts}/passkey-signup.png`, fullPage: true });
  await page.getByRole('button', { name: 'Create passkey' }).click();
  await returned('signup', 'signup');
  const { credentials: after } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  if (after.length !== 2) throw new Error(`after the sign-up the authenticator holds ${after.length} passkeys`);
  await context.close();
} catch (error) {
  failures += 1;
  console.error(error.message);
} finally {
  await browser.close();
}
process.exit(failures ? 1 : 0);
