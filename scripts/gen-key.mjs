#!/usr/bin/env node
// Prints a new Ed25519 private JWK on one line, for the SIGNING_KEY secret.
//
//   node scripts/gen-key.mjs                  # private JWK (keep secret)
//   node scripts/gen-key.mjs --public         # also print its public JWK on a second line
//   node scripts/gen-key.mjs | npx wrangler secret put SIGNING_KEY
import { generateSigningJwk, publicJwk } from "./keys.mjs";

const jwk = await generateSigningJwk();
process.stdout.write(JSON.stringify(jwk) + "\n");
if (process.argv.includes("--public")) {
  process.stdout.write(JSON.stringify(publicJwk(jwk)) + "\n");
}
