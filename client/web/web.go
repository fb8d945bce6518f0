// Package web holds the built Flock web app (client/web/dist, made by
// `make web` from the TypeScript sources here and committed like gen/), so
// that the server embeds it and `make run` needs only Go.
package web

import "embed"

// Dist is the built app: index.html and the content-hashed files under
// assets/ that it loads.
//
//go:embed all:dist
var Dist embed.FS
