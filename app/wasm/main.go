// Command wasm is the browser entry point of RD-RE Studio, built with GOOS=js GOARCH=wasm into the
// app.wasm that backend/webui embeds (see mk/wasm.mk). Built for the server it does nothing: the server
// renders the same components through backend/webui.
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/app/ui"
)

func main() {
	ui.Register()
	app.RunWhenOnBrowser()
}
