// Runs before `tsc` in `npm run build`: empties dist/ (so that nothing of a
// removed source lingers in the package) and copies the generated
// TypeScript (gen/ts at the root of the Flock repository, written by
// `make generate`) into src/gen/, so that tsc compiles it with the SDK into
// dist/gen/ and the published package carries it. src/gen/ is not
// committed. The generated files import each other by relative paths, which
// the copy keeps. The *_connectquery.ts files (TanStack Query descriptors for
// client/web, which import @connectrpc/connect-query) stay out of the SDK.
import { cpSync, existsSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../../../gen/ts/", import.meta.url));
const to = fileURLToPath(new URL("../src/gen/", import.meta.url));
const dist = fileURLToPath(new URL("../dist/", import.meta.url));

if (!existsSync(from)) {
  console.error(`prebuild: ${from} is missing; run \`make generate\` at the repository root`);
  process.exit(1);
}
rmSync(dist, { recursive: true, force: true });
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true, filter: (src) => !src.endsWith("_connectquery.ts") });
