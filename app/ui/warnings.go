package ui

import (
	"fmt"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// maxShownWarnings bounds the list a page renders; the full list stays in the JSON, the report and the
// server log.
const maxShownWarnings = 200

// renderWarnings shows a collapsed list of warnings (files skipped or doubted), so a count that looks wrong
// always has its reason one click away. Nothing is rendered when there are none.
func renderWarnings(testid, what string, ws []string) app.UI {
	if len(ws) == 0 {
		return nil
	}
	shown := ws
	if len(shown) > maxShownWarnings {
		shown = shown[:maxShownWarnings]
	}
	noun := "warnings"
	if len(ws) == 1 {
		noun = "warning"
	}
	return app.Details().Class("warnings").Attr("data-testid", testid).Attr("data-count", len(ws)).Body(
		app.Summary().Text(fmt.Sprintf("⚠ %d %s %s", len(ws), noun, what)),
		app.Ul().Body(
			app.Range(shown).Slice(func(i int) app.UI { return app.Li().Text(shown[i]) }),
			app.If(len(ws) > len(shown), func() app.UI {
				return app.Li().Class("muted").Text(fmt.Sprintf("… and %d more (see the server log or the report)", len(ws)-len(shown)))
			}),
		),
	)
}
