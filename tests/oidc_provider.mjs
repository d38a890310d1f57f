// A real OpenID provider for the sign-in tests (S7): panva's certified oidc-provider,
// installed by scripts/ensure-oidc-provider, started by tests/oidc_server.py on loopback.
//
// Its configuration comes as JSON in OIDC_TEST_CONFIG: issuer, port, clients, signing
// keys (JWKS, private), and accounts {id: {password, claims, amr, acr}}. The login page is
// our own small form that checks those passwords (the library ships none for production);
// consent is implied for these first-party clients. PKCE is required of every client.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.OIDC_PROVIDER_MODULES + '/');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const accounts = config.accounts;

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: ['oxygis-test-cookie-key'] },
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    acr: null,
    amr: null,
    sid: null,
    auth_time: null,
    iss: null,
    // As most providers do (Keycloak, Entra ID, Okta): how the person signed in, always.
    openid: ['sub', 'acr', 'amr', 'auth_time'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    groups: ['groups'],
  },
  features: {
    devInteractions: { enabled: false },
    // Its own page asks "Do you want to sign out?" (a click, in the browser tests).
    rpInitiatedLogout: { enabled: true },
  },
  // The ID token carries the claims of the granted scopes (not only /userinfo).
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => {
    if (!accounts[id]) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...accounts[id].claims }) };
  },
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile groups');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { ...(config.ttl || {}) },
});

const page = (uid, error) => `<!DOCTYPE html><html><head><title>Test IdP sign-in</title></head><body>
<h1>Test identity provider</h1>${error ? `<p id="error">${error}</p>` : ''}
<form method="post" action="/interaction/${uid}">
<label>Login <input id="login" name="login" autocomplete="username"></label>
<label>Password <input id="password" name="password" type="password"></label>
<button type="submit">Sign in to the IdP</button></form></body></html>`;

async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.setHeader('Content-Type', 'text/html');
      res.end(page(details.uid));
      return;
    }
    const body = await new Promise((resolve) => {
      let data = '';
      req.on('data', (chunk) => { data += chunk; });
      req.on('end', () => resolve(new URLSearchParams(data)));
    });
    const login = body.get('login');
    const account = accounts[login];
    if (!account || account.password !== body.get('password')) {
      res.setHeader('Content-Type', 'text/html');
      res.end(page(details.uid, 'Wrong login or password'));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: login, amr: account.amr || ['pwd'], acr: account.acr },
    }, { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 400;
    res.end(String(err));
  }
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res);
  } else {
    callback(req, res);
  }
}).listen(config.port, '127.0.0.1', () => {
  console.log(`listening on ${config.port}`);
});
