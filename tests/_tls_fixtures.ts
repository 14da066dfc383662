/**
 * Throw-away TLS material for tests, made at test time with `openssl` and `keytool` (no key is
 * ever committed): a test CA, broker keystores signed by it, a truststore and a client
 * certificate for mutual TLS.
 *
 * Not a test module itself (the leading underscore keeps `deno test` from collecting it).
 *
 * @module
 */
import { join } from "node:path";

/** Paths (and passwords) of the generated files. */
export interface TestCertificates {
  /** The test CA's certificate (PEM): what a client's `ssl.ca.location` names. */
  caPem: string;
  /** A second, unrelated CA (PEM) that signed nothing here: for "unknown CA" cases. */
  otherCaPem: string;
  /** PKCS12 keystore: broker key + certificate for `127.0.0.1` and `localhost` (+ CA). */
  brokerKeystore: string;
  /**
   * PKCS12 keystore: broker key + certificate for `broker.invalid` only (+ CA): valid chain,
   * wrong host name for a client connecting to 127.0.0.1.
   */
  wrongHostKeystore: string;
  /** Password of both keystores (and of their keys). */
  keystorePassword: string;
  /** PKCS12 truststore holding the CA (for client certificates). */
  truststore: string;
  /** Password of the truststore. */
  truststorePassword: string;
  /** Client certificate (PEM), signed by the CA, for `ssl.certificate.location`. */
  clientCertPem: string;
  /** The client's private key, unencrypted PKCS#8 PEM, for `ssl.key.location`. */
  clientKeyPem: string;
  /** The same key encrypted with {@linkcode TestCertificates.clientKeyPassword} (PKCS#8 PEM). */
  clientKeyEncryptedPem: string;
  /** Password of {@linkcode TestCertificates.clientKeyEncryptedPem} (`ssl.key.password`). */
  clientKeyPassword: string;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, {
      args,
      cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`\`${cmd}\` is not on the PATH`);
    throw e;
  }
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text.trim()}`);
  }
}

/** Makes a fresh set of test certificates in `dir` (about a second). */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  const keystorePassword = "broker-store-pw";
  const truststorePassword = "trust-store-pw";
  const clientKeyPassword = "client-key-pw";
  const openssl = (...args: string[]) => run("openssl", args, dir);
  const days = "2";

  // CAs (self-signed).
  const caExt = [
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ];
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    days,
    "-subj",
    "/CN=dfdd test CA",
    ...caExt,
  );
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "other-ca.key",
    "-out",
    "other-ca.pem",
    "-days",
    days,
    "-subj",
    "/CN=dfdd unrelated CA",
    ...caExt,
  );

  // Leaf certificates signed by the CA.
  const leaf = async (name: string, cn: string, ext: string[]) => {
    await Deno.writeTextFile(join(dir, `${name}.ext`), ext.join("\n") + "\n");
    await openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${cn}`,
    );
    await openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      days,
      "-extfile",
      `${name}.ext`,
    );
  };
  const serverExt = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth",
  ];
  await leaf("broker", "localhost", [
    ...serverExt,
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
  ]);
  await leaf("wrong-host", "broker.invalid", [...serverExt, "subjectAltName=DNS:broker.invalid"]);
  await leaf("client", "dfdd-test-client", [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=clientAuth",
  ]);

  // Broker keystores (PKCS12: key, certificate, CA).
  for (const name of ["broker", "wrong-host"]) {
    await openssl(
      "pkcs12",
      "-export",
      "-in",
      `${name}.pem`,
      "-inkey",
      `${name}.key`,
      "-certfile",
      "ca.pem",
      "-name",
      "broker",
      "-out",
      `${name}.p12`,
      "-passout",
      `pass:${keystorePassword}`,
    );
  }
  // Truststore for client certificates.
  await run("keytool", [
    "-importcert",
    "-noprompt",
    "-alias",
    "test-ca",
    "-file",
    "ca.pem",
    "-keystore",
    "truststore.p12",
    "-storetype",
    "PKCS12",
    "-storepass",
    truststorePassword,
  ], dir);
  // The client key, also encrypted (PKCS#8, AES-256).
  await openssl(
    "pkcs8",
    "-topk8",
    "-in",
    "client.key",
    "-out",
    "client-encrypted.key",
    "-v2",
    "aes-256-cbc",
    "-passout",
    `pass:${clientKeyPassword}`,
  );

  return {
    caPem: join(dir, "ca.pem"),
    otherCaPem: join(dir, "other-ca.pem"),
    brokerKeystore: join(dir, "broker.p12"),
    wrongHostKeystore: join(dir, "wrong-host.p12"),
    keystorePassword,
    truststore: join(dir, "truststore.p12"),
    truststorePassword,
    clientCertPem: join(dir, "client.pem"),
    clientKeyPem: join(dir, "client.key"),
    clientKeyEncryptedPem: join(dir, "client-encrypted.key"),
    clientKeyPassword,
  };
}
