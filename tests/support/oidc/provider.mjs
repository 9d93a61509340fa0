// A real OpenID Connect provider for the e2e tests (tests/support/oidc.rs): node-oidc-provider
// (npm, pinned by package-lock.json beside this file) with one client, the test's accounts,
// and the development login form (devInteractions) that the test fills in over HTTP.
// Its signing keys are made here and written to `keys_out`, so that the test's proxy can
// re-sign a changed ID token with the provider's own key (a wrong audience, an expiry).
// Configuration: the JSON in $OIDC_TEST_CONFIG. Listens on 127.0.0.1 only, on a port it
// prints as `ready <port>`.

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(process.env.OIDC_TEST_CONFIG);
// Installed by `npm ci` into a cache directory (scripts/test), not beside this file.
const entry = join(cfg.modules_dir, 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwks = {
  keys: [
    { ...rsa.privateKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
    { ...ec.privateKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  ],
};
writeFileSync(cfg.keys_out, JSON.stringify({
  rsa_kid: 'rsa-1',
  rsa_pem: rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }),
  ec_kid: 'ec-1',
  ec_pem: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }),
}));

const provider = new Provider(cfg.issuer, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    redirect_uris: [cfg.redirect_uri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: cfg.alg,
  }],
  jwks,
  // The scope's claims in the ID token itself (the server reads no userinfo).
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'groups'],
  },
  async findAccount(_ctx, id) {
    const claims = cfg.accounts[id];
    if (!claims) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...claims }; } };
  },
  // A first-party client: consent is given once the user has signed in.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile');
    grant.addOIDCClaims(['groups']);
    await grant.save();
    return grant;
  },
  cookies: { keys: ['inspector-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// Port 0: the kernel picks a free port, told to the test in the ready line (a port picked
// by the test and bound here later could be taken in between).
const server = createServer(provider.callback()).listen(0, '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
