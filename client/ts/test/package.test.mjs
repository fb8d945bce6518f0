// The package as it is published: what `npm pack` puts in it, and that a
// TypeScript app resolves its types through the exports map. Needs no server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

const root = fileURLToPath(new URL("..", import.meta.url));

test("the package holds the compiled SDK and the generated code, nothing else", () => {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const [pack] = JSON.parse(execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" }));
  const files = pack.files.map((f) => f.path);
  for (const f of ["package.json", "dist/index.js", "dist/index.d.ts", "dist/client.js", "dist/gen/flock/v1/user_pb.js", "dist/gen/flock/v1/user_pb.d.ts", "dist/gen/buf/validate/validate_pb.js"]) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  assert.deepEqual(files.filter((f) => !f.startsWith("dist/") && !/^(package\.json|README\.md)$/.test(f)), []);
});

test("every service is exported with its descriptor", async () => {
  const sdk = await import("@flock-social/client");
  for (const name of ["UserService", "PostService", "GroupService", "NotificationService", "ActivityService", "ModerationService"]) {
    assert.equal(sdk[name].typeName, `flock.v1.${name}`);
  }
  const client = sdk.createFlockClient({ baseUrl: "http://127.0.0.1:1" });
  for (const key of ["users", "posts", "groups", "notifications", "activity", "moderation"]) {
    assert.equal(typeof client[key], "object", key);
  }
  assert.equal(typeof client.notifications.subscribe, "function");
});

test("a TypeScript app type-checks against the package (moduleResolution NodeNext and Bundler)", { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "flock-sdk-consumer-"));
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  try {
    await Promise.all(["NodeNext", "Bundler"].map(async (moduleResolution) => {
      const tsconfig = join(dir, `tsconfig.${moduleResolution}.json`);
      writeFileSync(tsconfig, JSON.stringify({
        compilerOptions: {
          strict: true, noEmit: true, target: "ES2022", lib: ["ES2022", "DOM"], types: [],
          module: moduleResolution === "NodeNext" ? "NodeNext" : "ES2022", moduleResolution,
        },
        // Inside the package, "@flock-social/client" resolves to itself
        // through its exports, as it does from an app's node_modules.
        files: [join(root, "test-support", "consumer.ts")],
      }));
      try {
        await execFileAsync(process.execPath, [tsc, "-p", tsconfig], { cwd: root, encoding: "utf8" });
      } catch (err) {
        assert.fail(`tsc (${moduleResolution}): ${err.stdout ?? ""}${err.stderr ?? ""}${err.message}`);
      }
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
