// Generates SigV4 known-answer vectors with the AWS SDK for JavaScript v3.
//
//   cd tests/js && npm install && node make_sigv4_vectors.mjs > ../vectors/sigv4/js_sdk_v3.json
//
// Two sources:
//   * KMSClient requests captured at the HTTP handler (exactly what would go on the wire, after the
//     SDK's own middleware has added host, content-length, x-amz-content-sha256, x-amz-user-agent,
//     amz-sdk-invocation-id, amz-sdk-request and the Authorization header);
//   * requests signed directly with @smithy/signature-v4 (query strings, odd paths).
// The clock is frozen (Date.now) so the output is deterministic apart from the SDK version strings
// and invocation ids, which are part of the signed data and recorded verbatim.
import { Sha256 } from "@aws-crypto/sha256-js";
import { KMSClient, EncryptCommand, DecryptCommand, GenerateDataKeyCommand, ListKeysCommand } from "@aws-sdk/client-kms";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

const NOW_MS = Date.UTC(2025, 0, 1, 12, 0, 0); // 20250101T120000Z
Date.now = () => NOW_MS;

const CREDS = { accessKeyId: "AKIDEXAMPLEJS", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const SESSION = {
  accessKeyId: "ASIAEXAMPLEJS",
  secretAccessKey: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
  sessionToken: "FwoGZXIvYXdzEXAMPLE//////////wEaDEXAMPLETOKENjs+/=",
};

class Captured extends Error {}

function headerList(headers) {
  // HttpRequest headers is a plain object; node's http module sends them in insertion order.
  return Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]);
}

function queryString(query) {
  const parts = [];
  for (const [k, v] of Object.entries(query ?? {})) {
    const values = Array.isArray(v) ? v : [v];
    for (const one of values) {
      parts.push(one == null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
    }
  }
  return parts.join("&");
}

function bodyBytes(body) {
  if (body == null) return Buffer.alloc(0);
  if (typeof body === "string") return Buffer.from(body, "utf8");
  return Buffer.from(body);
}

function toVector(name, request, credential, region) {
  return {
    name,
    signer: "aws-sdk-js-v3",
    method: request.method,
    path: request.path,
    query: queryString(request.query),
    headers: headerList(request.headers),
    body_b64: bodyBytes(request.body).toString("base64"),
    now: NOW_MS / 1000,
    credential,
    expect: { region, signed_at: NOW_MS / 1000 },
  };
}

function credentialJson(c) {
  return {
    access_key_id: c.accessKeyId,
    secret_access_key: c.secretAccessKey,
    account: "111122223333",
    principal_arn: "arn:aws:iam::111122223333:user/js",
    session_token: c.sessionToken ?? null,
    expires_at: c.sessionToken ? NOW_MS / 1000 + 3600 : null,
  };
}

async function captureClient(name, { endpoint, region, credentials, command }) {
  let captured;
  const client = new KMSClient({
    region,
    endpoint,
    credentials,
    maxAttempts: 1,
    requestHandler: {
      handle: async (request) => {
        captured = request;
        throw new Captured("captured");
      },
    },
  });
  try {
    await client.send(command);
  } catch (e) {
    if (!(e instanceof Captured) && !(e?.message === "captured")) throw e;
  }
  if (!captured) throw new Error(`${name}: nothing captured`);
  return toVector(name, captured, credentialJson(credentials), region);
}

async function signDirect(name, { region, credentials, request }) {
  const signer = new SignatureV4({ credentials, region, service: "kms", sha256: Sha256 });
  const signed = await signer.sign(new HttpRequest(request), { signingDate: new Date(NOW_MS) });
  return toVector(name, signed, credentialJson(credentials), region);
}

const vectors = [];
vectors.push(
  await captureClient("js client Encrypt", {
    endpoint: "http://localhost:4566",
    region: "us-east-1",
    credentials: CREDS,
    command: new EncryptCommand({
      KeyId: "alias/app",
      Plaintext: new TextEncoder().encode("hello world"),
      EncryptionContext: { purpose: "test" },
    }),
  }),
);
vectors.push(
  await captureClient("js client Decrypt https default port", {
    endpoint: "https://kms.example.com",
    region: "eu-west-1",
    credentials: CREDS,
    command: new DecryptCommand({ CiphertextBlob: new Uint8Array([1, 2, 3, 4, 5]) }),
  }),
);
vectors.push(
  await captureClient("js client GenerateDataKey non-default port and /prefix path", {
    endpoint: "http://127.0.0.1:8443/prefix",
    region: "ap-southeast-2",
    credentials: CREDS,
    command: new GenerateDataKeyCommand({ KeyId: "1234abcd-12ab-34cd-56ef-1234567890ab", KeySpec: "AES_256" }),
  }),
);
vectors.push(
  await captureClient("js client ListKeys session token", {
    endpoint: "http://localhost:4566",
    region: "us-west-2",
    credentials: SESSION,
    command: new ListKeysCommand({}),
  }),
);
vectors.push(
  await captureClient("js client Encrypt endpoint path with %20", {
    endpoint: "http://localhost:4566/a%20b",
    region: "us-east-1",
    credentials: CREDS,
    command: new EncryptCommand({ KeyId: "alias/app", Plaintext: new Uint8Array([0, 255]) }),
  }),
);
vectors.push(
  await signDirect("js signer query string", {
    region: "us-east-1",
    credentials: CREDS,
    request: {
      method: "POST",
      protocol: "http:",
      hostname: "localhost",
      port: 4566,
      path: "/",
      query: { b: "2", a: ["z", "y"], "sp ace": "x y", plus: "1+1", tilde: "~._-" },
      headers: {
        host: "localhost:4566",
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "TrentService.ListKeys",
      },
      body: "{}",
    },
  }),
);
vectors.push(
  await signDirect("js signer empty body, whitespace in header value", {
    region: "us-east-1",
    credentials: CREDS,
    request: {
      method: "POST",
      protocol: "https:",
      hostname: "kms.example.com",
      path: "/",
      headers: {
        host: "kms.example.com",
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "TrentService.ListKeys",
        "x-custom": "  a   b \t c  ",
      },
      body: "",
    },
  }),
);

process.stdout.write(JSON.stringify({ generator: "tests/js/make_sigv4_vectors.mjs", vectors }, null, 2) + "\n");
