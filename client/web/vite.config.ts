// Builds the app into dist/ (committed; the server embeds it, see web.go).
//
// The SDK (client/ts) is compiled from its sources, and its generated code
// (client/ts/src/gen, a copy of gen/ts that client/ts's own build makes) is
// taken from gen/ts itself, the same files the connect-query descriptors
// import: one copy of every schema in the bundle, and no build of client/ts
// needed first. resolve.dedupe keeps one copy of the runtime libraries.
import { fileURLToPath } from "node:url";
import path from "node:path";
import { defineConfig, type Plugin } from "vite";

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkSrc = path.resolve(here, "../ts/src");
const genTS = path.resolve(here, "../../gen/ts");

function sdkGenFromRepo(): Plugin {
  return {
    name: "flock-sdk-gen",
    enforce: "pre",
    resolveId(source, importer) {
      if (!importer || !source.startsWith("./gen/")) return null;
      if (path.dirname(importer) !== sdkSrc) return null;
      return path.join(genTS, source.slice("./gen/".length).replace(/\.js$/, ".ts"));
    },
  };
}

// `npm run dev` proxies the API to a Flock server (make run) on FLOCK_URL.
const api = process.env.FLOCK_URL ?? "http://127.0.0.1:8080";
const proxied = ["/api", "/flock.v1.", "/media", "/verify-email", "/reset-password", "/docs", "/openapi.yaml"];

export default defineConfig({
  plugins: [sdkGenFromRepo()],
  resolve: {
    alias: {
      "@flock-social/client": path.join(sdkSrc, "index.ts"),
      "@gen": genTS,
    },
    dedupe: ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-web", "@tanstack/react-query", "react", "react-dom"],
  },
  server: {
    fs: { allow: [path.resolve(here, "../..")] },
    proxy: Object.fromEntries(proxied.map((p) => [p, { target: api, changeOrigin: false, ws: true }])),
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    sourcemap: false,
    reportCompressedSize: true,
    // One chunk of ~150 KB gzipped: the whole app on the first load.
    chunkSizeWarningLimit: 700,
    rollupOptions: {
      // TanStack Query's "use client" directives mean nothing outside React Server Components.
      onwarn(warning, warn) {
        if (warning.code !== "MODULE_LEVEL_DIRECTIVE") warn(warning);
      },
    },
  },
});
