// An independent OpenID provider for Tenantry's federation tests: node-oidc-provider (the
// OpenID-certified Node implementation), on an ephemeral loopback port, with its
// development login and consent pages (any login name signs in; the password is not
// checked). Prints `issuer <url>` once listening. Configuration from the environment.
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
    client_secret: env('OP_CLIENT_SECRET'),
    redirect_uris: [env('OP_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['given_name', 'family_name', 'name'],
  },
  // The profile and email claims in the ID token too, not only at userinfo.
  conformIdTokenClaims: false,
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
