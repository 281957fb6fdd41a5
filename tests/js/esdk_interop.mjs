// Encrypts or decrypts one file with the AWS Encryption SDK for JavaScript (@aws-crypto/client-node)
// through a KMS keyring whose KMS clients point at an openkms endpoint (a client provider built with
// the SDK's own getClient helper: the documented way to configure the endpoint and credentials).
//
//   node tests/js/esdk_interop.mjs encrypt <endpoint-url> <in> <out> <key-arn>[,<key-arn>...] [context-json]
//   node tests/js/esdk_interop.mjs decrypt <endpoint-url> <in> <out> <key-arn>[,<key-arn>...]
//
// Credentials and Region come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION (defaults
// test/test/us-east-1). Streams the file (encryptStream / decryptStream), then prints one JSON object:
//   {"ok": true, "mode": ..., "encryptionContext": {...}, "keyIds": [provider key ids in the header]}
// Used by tests/compat/test_encryption_sdk_js.py.
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import {
  buildClient,
  CommitmentPolicy,
  getClient,
  KMS,
  KmsKeyringNode,
} from "@aws-crypto/client-node";

const [mode, endpoint, input, output, keyList, contextJson = "{}"] = process.argv.slice(2);
if (!["encrypt", "decrypt"].includes(mode) || !endpoint || !input || !output || !keyList) {
  console.error("usage: node esdk_interop.mjs encrypt|decrypt <endpoint-url> <in> <out> <key-arns> [context]");
  process.exit(2);
}

const clientProvider = getClient(KMS, {
  endpoint,
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "test",
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "test",
  },
  maxAttempts: 1,
});
const [generatorKeyId, ...keyIds] = keyList.split(",");
const keyring = new KmsKeyringNode({ clientProvider, generatorKeyId, keyIds });
const { encryptStream, decryptStream } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);

try {
  let header;
  if (mode === "encrypt") {
    const encryptionContext = JSON.parse(contextJson);
    const stream = encryptStream(keyring, { encryptionContext });
    stream.on("MessageHeader", (h) => { header = h; });
    await pipeline(createReadStream(input), stream, createWriteStream(output));
  } else {
    const stream = decryptStream(keyring);
    stream.on("MessageHeader", (h) => { header = h; });
    await pipeline(createReadStream(input), stream, createWriteStream(output));
  }
  const ids = header.encryptedDataKeys.map((edk) => edk.providerInfo);
  console.log(JSON.stringify({ ok: true, mode, encryptionContext: header.encryptionContext, keyIds: ids }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, mode, name: err?.name, message: String(err?.message ?? err) }));
  process.exit(1);
}
