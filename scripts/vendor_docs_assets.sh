#!/usr/bin/env bash
# Vendor Swagger UI and ReDoc assets from the npm registry (pinned), with their licences.
# Usage: scripts/vendor_docs_assets.sh [DEST=service/static/docs]   (needs npm; commit the result)
set -euo pipefail
DEST=${1:-service/static/docs}
SWAGGER=swagger-ui-dist@5.35.0   # Apache-2.0
REDOC=redoc@2.5.4                # MIT (redoc 3.x also ships bundles/redoc.standalone.js)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$DEST"
(cd "$tmp" && npm pack --silent "$SWAGGER" "$REDOC" >/dev/null)
tar -xzf "$tmp"/swagger-ui-dist-*.tgz -C "$tmp" package/swagger-ui-bundle.js package/swagger-ui.css \
    package/favicon-32x32.png package/LICENSE package/NOTICE package/swagger-ui-bundle.js.LICENSE.txt
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png swagger-ui-bundle.js.LICENSE.txt; do
  cp "$tmp/package/$f" "$DEST/$f"; done
cp "$tmp/package/LICENSE" "$DEST/LICENSE.swagger-ui"; cp "$tmp/package/NOTICE" "$DEST/NOTICE.swagger-ui"
rm -rf "$tmp/package"
tar -xzf "$tmp"/redoc-*.tgz -C "$tmp" package/bundles/redoc.standalone.js \
    package/bundles/redoc.standalone.js.LICENSE.txt package/LICENSE
cp "$tmp/package/bundles/redoc.standalone.js"* "$DEST/"; cp "$tmp/package/LICENSE" "$DEST/LICENSE.redoc"
printf '%s\n%s\n' "$SWAGGER" "$REDOC" > "$DEST/VERSIONS"
(cd "$DEST" && sha256sum swagger-ui-bundle.js swagger-ui.css redoc.standalone.js > SHA256SUMS)
du -sh "$DEST"; cat "$DEST/VERSIONS"
