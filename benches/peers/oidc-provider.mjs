// Peer 3 (token issuance): node `oidc-provider` with the client_credentials grant, issuing the
// same kind of token as our Worker: an EdDSA-signed JWT access token (RFC 9068 shape, through
// resource indicators with accessTokenFormat "jwt"). One confidential client, secret checked
// with client_secret_basic. Run as its own process by run.mjs; prints `listening <port>`.
//
//   node benches/peers/oidc-provider.mjs   (env BENCH_CLIENT_ID, BENCH_CLIENT_SECRET)
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const CLIENT_ID = process.env.BENCH_CLIENT_ID ?? "bench";
const CLIENT_SECRET = process.env.BENCH_CLIENT_SECRET ?? "bench-secret-bench-secret";
const AUDIENCE = "https://api.bench";

const { privateKey } = generateKeyPairSync("ed25519");
const signingJwk = { ...privateKey.export({ format: "jwk" }), kid: "bench-ed25519", alg: "EdDSA", use: "sig" };

const provider = new Provider("http://127.0.0.1", {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "EdDSA",
    },
  ],
  jwks: { keys: [signingJwk] },
  enabledJWA: { idTokenSigningAlgValues: ["EdDSA"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "read",
        audience: AUDIENCE,
        accessTokenTTL: 3600,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "EdDSA" } },
      }),
    },
  },
});
provider.proxy = false;

const server = provider.listen(0, "127.0.0.1");
server.keepAliveTimeout = 60_000;
server.on("listening", () => console.log(`listening ${server.address().port}`));
process.on("SIGTERM", () => process.exit(0));
