import assert from "node:assert/strict";
import {
  isOutOfDescriptors,
  isPathError,
  isPlaceError,
  isRefusedPermission,
  isTooLargeError,
  permissionMessage,
  refusalInText,
  refusedPermission,
} from "./io_errors.ts";

const refusal = (kind: string, target: string) =>
  new Deno.errors.NotCapable(
    `Requires ${kind} access to ${JSON.stringify(target)}, run again with the --allow-${kind} flag`,
  );

Deno.test("refusedPermission() reads Deno's NotCapable: kind, target and flag", () => {
  assert.deepEqual(refusedPermission(refusal("write", "/data/out/x.log")), {
    kind: "write",
    target: "/data/out/x.log",
    flag: "--allow-write",
  });
  assert.deepEqual(refusedPermission(refusal("net", "b1:9092")), {
    kind: "net",
    target: "b1:9092",
    flag: "--allow-net",
  });
  assert.deepEqual(
    refusalInText('Requires env access to "NODE_ENV", run again with the --allow-env flag'),
    {
      kind: "env",
      target: "NODE_ENV",
      flag: "--allow-env",
    },
  );
  // A placeholder is no value for a flag.
  assert.equal(
    refusalInText("Requires read access to <CWD>, run again with the --allow-read flag")?.target,
    undefined,
  );
  assert.equal(refusedPermission(new Error("Permission denied (os error 13)")), undefined);
  assert.equal(refusedPermission("nothing"), undefined);
  assert.equal(refusedPermission(undefined), undefined);
});

Deno.test("refusedPermission() finds a refusal wrapped by kafkajs or in a cause chain", () => {
  // kafkajs copies a socket error's message into its own error, without the original.
  const copied = new Error(
    'Connection error: Requires net access to "b2:9093", run again with the --allow-net flag',
  );
  copied.name = "KafkaJSConnectionError";
  assert.equal(refusedPermission(copied)?.target, "b2:9093");
  const retries = Object.assign(new Error("Number of retries exceeded"), {
    originalError: new Error("x", { cause: refusal("read", "/ca.pem") }),
  });
  assert.equal(refusedPermission(retries)?.target, "/ca.pem");
  const aggregate = new AggregateError([new Error("other"), refusal("sys", "hostname")], "all");
  assert.equal(refusedPermission(aggregate)?.kind, "sys");
  // A cycle ends.
  const a: { message: string; cause?: unknown } = { message: "a" };
  a.cause = { message: "b", cause: a };
  assert.equal(refusedPermission(a), undefined);
  // A NotCapable with other words is still a refusal.
  assert.ok(isRefusedPermission(new Deno.errors.NotCapable("no")));
});

Deno.test("a refused permission is never a record's fault", () => {
  for (const error of [refusal("write", "/o/a/b"), new Deno.errors.NotCapable("no")]) {
    assert.equal(isPathError(error), false);
    assert.equal(isTooLargeError(error), false);
    assert.equal(isPlaceError(error), false);
  }
  // Deno 1 reported a refusal as PermissionDenied; it is not a folder refusing the file.
  const old = new Deno.errors.PermissionDenied(
    'Requires write access to "/o/a", run again with the --allow-write flag',
  );
  assert.equal(isPlaceError(old), false);
  // The system refusing a folder still is.
  assert.equal(
    isPlaceError(new Deno.errors.PermissionDenied("Permission denied (os error 13)")),
    true,
  );
});

Deno.test("permissionMessage() is one line naming the flag; a path in a given directory names the directory", () => {
  assert.equal(
    permissionMessage({ kind: "write", target: "/data/out/x.log", flag: "--allow-write" }, [
      "/data/out",
    ]),
    'Cannot run: this program needs write access to "/data/out" (run with --allow-write=/data/out, or add it to the list of --allow-write); see "Permissions" in README.md',
  );
  assert.match(
    permissionMessage({ kind: "read", target: "/data/outside", flag: "--allow-read" }, [
      "/data/out",
    ]),
    /--allow-read=\/data\/outside,/,
  );
  assert.match(
    permissionMessage({ kind: "env", target: "KAFKA_USER", flag: "--allow-env" }),
    /needs env access to "KAFKA_USER" \(run with --allow-env=KAFKA_USER,/,
  );
  assert.match(
    permissionMessage({ kind: "write", target: "/it's here", flag: "--allow-write" }),
    /--allow-write='\/it'\\''s here'/,
  );
  const unnamed = permissionMessage({ kind: "read", target: undefined, flag: "--allow-read" });
  assert.match(unnamed, /needs read access \(run with --allow-read\)/);
  assert.doesNotMatch(unnamed, /\n/);
});

Deno.test("isOutOfDescriptors() knows EMFILE and ENFILE by code or by Deno's os error number", () => {
  const withCode = Object.assign(new Error("Too many open files"), { code: "EMFILE" });
  assert.equal(isOutOfDescriptors(withCode), true);
  assert.equal(isOutOfDescriptors(new Error("Too many open files (os error 24): open 'x'")), true);
  assert.equal(isOutOfDescriptors(new Error("Too many open files in system (os error 23)")), true);
  assert.equal(isOutOfDescriptors(new Error("No space left on device (os error 28)")), false);
  assert.equal(isOutOfDescriptors("EMFILE"), false);
});
