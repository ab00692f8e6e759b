// An independent OpenID provider for Tenantry's federation tests: node-oidc-provider (the
// OpenID-certified Node implementation), on an ephemeral loopback port, with its
// development login and consent pages (any login name signs in; the password is not
// checked). Prints `issuer <url>` once listening. Configuration from the environment:
// OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI; with OP_JWKS_URI the client
// authenticates with `private_key_jwt` (its keys at that URI) instead of the secret; with
// OP_USERINFO_ONLY=1 the profile and email claims are served by userinfo only, as the
// specification has it for the code flow.
import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: env('OP_CLIENT_ID'),
    redirect_uris: [env('OP_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    ...(process.env.OP_JWKS_URI
      ? { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: process.env.OP_JWKS_URI }
      : { token_endpoint_auth_method: 'client_secret_basic', client_secret: env('OP_CLIENT_SECRET') }),
  }],
  features: { devInteractions: { enabled: true } },
  // The tenant's JWKS is on loopback, which the provider's outbound protection refuses
  // (special-use addresses): lifted here, for this test setup only.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name', 'name'],
  },
  // Unless OP_USERINFO_ONLY: the profile and email claims in the ID token too.
  conformIdTokenClaims: process.env.OP_USERINFO_ONLY === '1',
  cookies: { keys: [env('OP_CLIENT_SECRET')] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@op.example`,
      email_verified: true,
      given_name: 'Opal',
      family_name: 'Provider',
    }),
  }),
});
server.on('request', provider.callback());
console.log(`issuer ${issuer}`);
// Why a token request was refused, for a test's log.
provider.on('grant.error', (ctx, error) => {
  const causes = [];
  for (let e = error; e; e = e.cause) causes.push(e.error_description ?? e.message);
  console.error(`grant.error ${causes.join(': ')}`);
});
