// An OpenID provider for kafka-backup's OAUTHBEARER tests: npm oidc-provider (pinned by
// package*.json beside this file, installed by scripts/test-env.sh with npm ci), issuing
// signed JWT access tokens with the client-credentials grant. Client secrets are enforced.
//
//   node server.mjs --port PORT --issuer URL --audience AUD --clients FILE
//
// Listens on 127.0.0.1:PORT (plain HTTP; test-env.sh puts stunnel in front for HTTPS).
// FILE is JSON: [{"client_id", "client_secret", "auth_method": "client_secret_basic" |
// "client_secret_post", "scope": "kafka", "audience": AUD (default --audience),
// "token_ttl": seconds (default 3600)}]. Every token is an RS256 JWT with iss, sub (the
// client id), aud, exp, iat, jti, client_id and scope; the signing key is made at start
// and published at /jwks. Prints "listening on PORT" once ready.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
for (const required of ['port', 'issuer', 'audience', 'clients']) {
  if (!args[required]) {
    console.error(`usage: server.mjs --port PORT --issuer URL --audience AUD --clients FILE (missing --${required})`);
    process.exit(2);
  }
}

const clients = JSON.parse(readFileSync(args.clients, 'utf8'));
const byId = new Map(clients.map((c) => [c.client_id, c]));
// The resource indicator every token is issued for when the client names none; the
// audience itself comes from the client's entry (so one client gets a wrong one).
const RESOURCE = 'urn:kafka-backup:test:kafka';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'kb-test-1', use: 'sig', alg: 'RS256' };

const scopes = [...new Set(clients.flatMap((c) => (c.scope || '').split(' ').filter(Boolean)))];

const provider = new Provider(args.issuer, {
  clients: clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: c.auth_method || 'client_secret_basic',
    scope: c.scope || 'kafka',
  })),
  jwks: { keys: [jwk] },
  scopes,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        const c = byId.get(client.clientId);
        return {
          scope: c.scope || 'kafka',
          audience: c.audience || args.audience,
          accessTokenTTL: c.token_ttl || 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // librdkafka parses the token for "sub": the client id is the principal.
  extraTokenClaims: (ctx, token) => ({ sub: token.clientId }),
  ttl: { ClientCredentials: (ctx, token, client) => byId.get(client.clientId)?.token_ttl || 3600 },
});
provider.proxy = true;

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.error', (ctx, err) => console.error(`token request refused: ${err.error}: ${err.error_description}`));
provider.on('grant.success', (ctx) => console.log(`issued a token to ${ctx.oidc.client?.clientId}`));

const server = provider.listen(Number(args.port), '127.0.0.1', () => {
  console.log(`listening on ${args.port}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
