// Drives a running openkms server with the AWS SDK for JavaScript v3 (@aws-sdk/client-kms).
//
//   node tests/js/kms_flow.mjs <endpoint-url> [access-key-id] [secret-access-key] [region]
//
// Runs a typical KMS flow plus a few error cases and prints one JSON object on stdout:
//   {"ok": true, "keyId": ..., "shared": {ciphertext, plaintext, context}, "checks": {...}, "errors": {...}}
// ("shared" is one Encrypt result, base64, for the caller to decrypt with another SDK.)
// Exits non-zero (with {"ok": false, "failure": "..."} on stdout) as soon as a check fails.
// Lives next to tests/js/node_modules so that the bare "@aws-sdk/client-kms" import resolves.
// Used by tests/compat/test_js_sdk.py.
import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ListKeysCommand,
} from "@aws-sdk/client-kms";

const [endpoint, accessKeyId = "test", secretAccessKey = "test", region = "us-east-1"] = process.argv.slice(2);
if (!endpoint) {
  console.error("usage: node kms_flow.mjs <endpoint-url> [access-key-id] [secret-access-key] [region]");
  process.exit(2);
}

function makeClient(secret) {
  return new KMSClient({
    endpoint,
    region,
    credentials: { accessKeyId, secretAccessKey: secret },
    maxAttempts: 1,
  });
}

const kms = makeClient(secretAccessKey);
const checks = {};
const errors = {};

class CheckFailed extends Error {}

function check(name, condition, detail) {
  checks[name] = Boolean(condition);
  if (!condition) {
    throw new CheckFailed(`${name}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  }
}

function equalBytes(a, b) {
  return Buffer.from(a).equals(Buffer.from(b));
}

// Sends a command that must fail; records and returns the error name, HTTP status and message.
async function expectError(label, client, command) {
  try {
    await client.send(command);
  } catch (err) {
    const got = {
      name: err.name,
      status: err.$metadata?.httpStatusCode ?? null,
      message: err.message ?? null,
      fault: err.$fault ?? null,
    };
    errors[label] = got;
    return got;
  }
  throw new CheckFailed(`${label}: the request succeeded but an error was expected`);
}

async function main() {
  // CreateKey
  const created = await kms.send(new CreateKeyCommand({ Description: "js sdk v3 compat" }));
  const md = created.KeyMetadata;
  check("create_key", md && md.KeyState === "Enabled" && md.Enabled === true && md.KeySpec === "SYMMETRIC_DEFAULT", md);
  check("create_key_arn", md.Arn.endsWith(`:key/${md.KeyId}`) && md.Arn.startsWith(`arn:aws:kms:${region}:`), md.Arn);
  check("create_key_date", md.CreationDate instanceof Date && !Number.isNaN(md.CreationDate.getTime()), md.CreationDate);

  // Encrypt with an encryption context, Decrypt it back
  const plaintext = new Uint8Array([0, 1, 2, 250, 251, 252, 253, 254, 255, ...Buffer.from("hello from js")]);
  const context = { purpose: "compat", "ünïcode": "välue" };
  const enc = await kms.send(new EncryptCommand({ KeyId: md.KeyId, Plaintext: plaintext, EncryptionContext: context }));
  check("encrypt", enc.KeyId === md.Arn && enc.EncryptionAlgorithm === "SYMMETRIC_DEFAULT", enc.KeyId);
  check("encrypt_blob_type", enc.CiphertextBlob instanceof Uint8Array && enc.CiphertextBlob.length > plaintext.length);
  const dec = await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob, EncryptionContext: context }));
  check("decrypt_round_trip", equalBytes(dec.Plaintext, plaintext));
  check("decrypt_key_id", dec.KeyId === md.Arn && dec.EncryptionAlgorithm === "SYMMETRIC_DEFAULT", dec.KeyId);

  // GenerateDataKey AES_256, then Decrypt its CiphertextBlob
  const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: md.KeyId, KeySpec: "AES_256" }));
  check("generate_data_key", dk.Plaintext instanceof Uint8Array && dk.Plaintext.length === 32 && dk.KeyId === md.Arn);
  const dkDec = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob }));
  check("generate_data_key_decrypt", equalBytes(dkDec.Plaintext, dk.Plaintext));

  // DescribeKey
  const described = await kms.send(new DescribeKeyCommand({ KeyId: md.KeyId }));
  check(
    "describe_key",
    described.KeyMetadata.KeyId === md.KeyId && described.KeyMetadata.Description === "js sdk v3 compat",
    described.KeyMetadata,
  );

  // ListKeys (follows NextMarker until the new key shows up or the list ends)
  let marker;
  let found = false;
  let pages = 0;
  do {
    const page = await kms.send(new ListKeysCommand({ Limit: 100, Marker: marker }));
    pages += 1;
    found ||= page.Keys.some((k) => k.KeyId === md.KeyId && k.KeyArn === md.Arn);
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (!found && marker && pages < 100);
  check("list_keys", found);

  // Errors
  const missing = await expectError(
    "describe_missing",
    kms,
    new DescribeKeyCommand({ KeyId: "00000000-0000-0000-0000-000000000000" }),
  );
  check("describe_missing", missing.name === "NotFoundException" && missing.status === 400, missing);

  const tampered = Uint8Array.from(enc.CiphertextBlob);
  tampered[tampered.length - 1] ^= 0x01;
  const bad = await expectError(
    "decrypt_tampered",
    kms,
    new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context }),
  );
  check("decrypt_tampered", bad.name === "InvalidCiphertextException" && bad.status === 400, bad);

  const wrongSecret = await expectError(
    "wrong_secret",
    makeClient(`${secretAccessKey}-wrong`),
    new EncryptCommand({ KeyId: md.KeyId, Plaintext: plaintext }),
  );
  check("wrong_secret", wrongSecret.name === "InvalidSignatureException" && wrongSecret.status === 400, wrongSecret);

  const shared = {
    ciphertext: Buffer.from(enc.CiphertextBlob).toString("base64"),
    plaintext: Buffer.from(plaintext).toString("base64"),
    context,
  };
  return { ok: true, keyId: md.KeyId, shared, checks, errors };
}

try {
  console.log(JSON.stringify(await main()));
} catch (err) {
  const failure = err instanceof CheckFailed ? err.message : `${err.name}: ${err.message}`;
  console.log(JSON.stringify({ ok: false, failure, checks, errors }));
  process.exit(1);
}
