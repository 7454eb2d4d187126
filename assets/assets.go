// Package assets holds the static web files of RD-RE Studio (style sheet, icons) for the server to
// embed. Everything the UI loads comes from here or from the server's API: no external host, so the
// tool works offline.
package assets

import "embed"

// Web holds the files served under /web/: web/studio.css, web/icon.svg, web/icon-192.png.
//
//go:embed web
var Web embed.FS
