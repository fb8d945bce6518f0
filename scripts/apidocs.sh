#!/usr/bin/env bash
# Copies the Swagger UI bundle that /docs serves from the npm package
# swagger-ui-dist (pinned in tools/codegen/package.json) into server/apidocs/,
# where server/apidocs.go embeds it. index.html and init.js there are
# hand-written and left alone; the copied files are committed like gen/.
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=tools/codegen/node_modules/swagger-ui-dist
out=server/apidocs
[ -f "$pkg/swagger-ui-bundle.js" ] || { echo "apidocs: run 'npm ci --prefix tools/codegen' first" >&2; exit 1; }

mkdir -p "$out"
# The bundle, its stylesheet and icon, and the licences that travel with them:
# Apache-2.0 asks for LICENSE and NOTICE, and the bundle's third-party notices
# are in swagger-ui-bundle.js.LICENSE.txt.
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE swagger-ui-bundle.js.LICENSE.txt; do
  cp "$pkg/$f" "$out/$f"
  chmod 0644 "$out/$f"
done
