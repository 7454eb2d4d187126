package ui

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/rdre-studio/studio/shared/protocol"
)

// gridPage is how many tiles the grid renders before "show more": a whole MVTec AD set has thousands
// of images and rendering them all at once makes the first paint slow for no gain.
const gridPage = 240

const thumbSize = "192"

func decodeLoose(raw json.RawMessage, dst any) error {
	if len(raw) == 0 {
		return fmt.Errorf("payload missing")
	}
	return json.Unmarshal(raw, dst)
}

func (s *Studio) renderGrid() app.UI {
	d := s.dataset(s.dsID)
	if s.imgDSID != s.dsID {
		return app.Div().Class("empty").Text("Loading images…")
	}
	kinds := s.kinds()
	imgs := s.filtered()
	shown := imgs
	if len(shown) > s.limit {
		shown = shown[:s.limit]
	}
	sortOpts := []app.UI{
		option("", "path", s.fSort),
		option("kind", "defect type", s.fSort),
		option("annotated", "annotated first", s.fSort),
	}
	if len(s.scores) > 0 {
		sortOpts = append(sortOpts,
			option("score", "score, highest first", s.fSort),
			option("fp", "false positives first (good, high score)", s.fSort),
			option("fn", "missed defects first (defect, low score)", s.fSort))
	}
	var dsWarnings []string
	if d != nil {
		dsWarnings = d.Warnings
	}
	return app.Section().Class("grid-view").Body(
		renderWarnings("dataset-warnings", "about this dataset's files", dsWarnings),
		s.renderEvalPanel(),
		s.renderTrainPanel(), // train.go
		app.Div().Class("filters").Body(
			app.Label().Body(
				app.Text("Split "),
				app.Select().Attr("data-testid", "filter-split").OnChange(func(ctx app.Context, e app.Event) {
					ctx.Navigate(s.gridURL(selectValue(ctx), s.fKind, s.fSort, s.fMine))
				}).Body(
					option("", "all", s.fSplit),
					app.Range(splitsOf(d)).Slice(func(i int) app.UI {
						sp := splitsOf(d)[i]
						return option(sp, sp, s.fSplit)
					}),
				),
			),
			app.Label().Body(
				app.Text("Defect type "),
				app.Select().Attr("data-testid", "filter-kind").OnChange(func(ctx app.Context, e app.Event) {
					ctx.Navigate(s.gridURL(s.fSplit, selectValue(ctx), s.fSort, s.fMine))
				}).Body(
					option("", "all", s.fKind),
					app.Range(kinds).Slice(func(i int) app.UI { return option(kinds[i], kinds[i], s.fKind) }),
				),
			),
			app.Label().Body(
				app.Text("Sort "),
				app.Select().Attr("data-testid", "grid-sort").OnChange(func(ctx app.Context, e app.Event) {
					ctx.Navigate(s.gridURL(s.fSplit, s.fKind, selectValue(ctx), s.fMine))
				}).Body(sortOpts...),
			),
			app.If(len(s.jobs) > 0, func() app.UI {
				return app.Label().Body(
					app.Text("Model job "),
					app.Select().Attr("data-testid", "job-select").OnChange(func(ctx app.Context, e app.Event) {
						s.selectJob(selectValue(ctx))
						ctx.Navigate(s.gridURL(s.fSplit, s.fKind, s.fSort, s.fMine))
					}).Body(
						option("", "none", s.jobID),
						app.Range(s.jobs).Slice(func(i int) app.UI {
							j := s.jobs[i]
							name := j.ModelName
							if name == "" {
								name = j.Model
							}
							created, _ := time.Parse(time.RFC3339, j.Created)
							return option(j.ID, fmt.Sprintf("%s · %s · %s · %s", name, j.Split, j.State, humanTime(created, time.Now())), s.jobID)
						}),
					),
				)
			}),
			app.Label().Class("check").Body(
				app.Input().Type("checkbox").Attr("data-testid", "filter-mine").Checked(s.fMine).OnChange(func(ctx app.Context, e app.Event) {
					ctx.Navigate(s.gridURL(s.fSplit, s.fKind, s.fSort, ctx.JSSrc().Get("checked").Bool()))
				}),
				app.Text(" annotated by me"),
			),
			s.renderReviewFilter(),
			app.Span().Class("count").Attr("data-testid", "grid-count").Text(fmt.Sprintf("%d of %d images", len(imgs), len(s.images))),
			app.Span().Class("count").Attr("data-testid", "review-count").Text(countsText(s.reviewCounts())),
			app.If(d != nil, func() app.UI {
				return exportLink(s.dsID, "Export masks")
			}),
		),
		app.Div().Class("image-grid").Attr("data-testid", "image-grid").Body(
			app.Range(shown).Slice(func(i int) app.UI { return s.renderTile(shown[i]) }),
		),
		app.If(len(imgs) > len(shown), func() app.UI {
			return app.Button().Class("more").Attr("data-testid", "grid-more").
				Text(fmt.Sprintf("Show more (%d left)", len(imgs)-len(shown))).
				OnClick(func(ctx app.Context, e app.Event) { s.limit += gridPage })
		}),
	)
}

// exportLink downloads the dataset's masks. The download attribute must have a value: go-app drops an
// empty one, and without it go-app's router takes the click for a page of the app (its Not Found page).
// The server's Content-Disposition names the file.
func exportLink(ds, label string) app.UI {
	return app.A().Class("button").Attr("data-testid", "export-masks").
		Href(apiURL("/api/export", "dataset", ds)).Attr("download", ds+"-masks.zip").Text(label)
}

// kinds returns the defect types of the loaded images, "good" first: the filter offers exactly what
// the grid can show, whether or not the dataset list has arrived yet.
func (s *Studio) kinds() []string {
	seen := map[string]bool{}
	var out []string
	for _, im := range s.images {
		if !seen[im.Kind] {
			seen[im.Kind] = true
			out = append(out, im.Kind)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == protocol.KindGood) != (out[j] == protocol.KindGood) {
			return out[i] == protocol.KindGood
		}
		return out[i] < out[j]
	})
	return out
}

// emptyOption stands for the empty value in an option: go-app drops an empty value attribute, and an
// option without one has its label as its value ("all" would then filter for a split named "all").
const emptyOption = "\u2205"

func option(value, label, selected string) app.UI {
	v := value
	if v == "" {
		v = emptyOption
	}
	return app.Option().Value(v).Selected(value == selected).Text(label)
}

// selectValue is the value of the select that fired the event, "" for the option option("") made.
func selectValue(ctx app.Context) string {
	v := ctx.JSSrc().Get("value").String()
	if v == emptyOption {
		return ""
	}
	return v
}

func (s *Studio) renderTile(im protocol.ImageInfo) app.UI {
	score, hasScore := s.scores[im.ID]
	return app.A().Class("tile").Href(s.imageURL(im.ID)).
		Attr("data-testid", "image-tile").Attr("data-id", im.ID).
		Attr("data-split", im.Split).Attr("data-kind", im.Kind).Attr("data-review", s.reviewOf(im.ID)).
		Title("%s", im.ID).Body(
		app.Img().Loading("lazy").Alt(im.ID).Width(192).Height(192).
			Src(apiURL("/api/thumb", "dataset", s.dsID, "id", im.ID, "size", thumbSize)),
		app.Div().Class("tile-meta").Body(
			app.Span().Class("badge split-"+im.Split).Text(im.Split),
			app.Span().Class("badge kind").Class(map[bool]string{true: "good"}[im.Kind == protocol.KindGood]).Text(im.Kind),
			app.If(im.MaskID != "", func() app.UI {
				return app.Span().Class("badge gt").Title("ground-truth mask in the dataset").Text("GT")
			}),
			app.If(im.HasWorkspaceMask, func() app.UI {
				return app.Span().Class("badge mine").Title("mask drawn in this workspace").Text("drawn")
			}),
			app.If(s.reviewOf(im.ID) != protocol.ReviewUnlabelled, func() app.UI {
				st := s.reviewOf(im.ID)
				return app.Span().Class("badge review-" + st).Title("review state").Text("✓ " + reviewLabel(st))
			}),
			app.If(hasScore, func() app.UI {
				return app.Span().Class("badge score").Attr("data-testid", "tile-score").Text(fmt.Sprintf("%.3f", score))
			}),
			app.If(!hasScore && s.excludedByJob(im.ID), func() app.UI {
				return app.Span().Class("badge").Attr("data-testid", "tile-excluded").
					Title("The job's model was trained or calibrated on this image, so the evaluation leaves it out").Text("trained on")
			}),
		),
		app.If(hasScore, func() app.UI {
			return app.Img().Class("tile-heat").Loading("lazy").Alt("anomaly map").
				Src(apiURL("/api/heatmap", "job", s.jobID, "id", im.ID))
		}),
	)
}

// splitsOf lists the dataset's splits for the filter; train and test when the server did not say.
func splitsOf(d *protocol.DatasetInfo) []string {
	if d == nil || len(d.Splits) == 0 {
		return []string{protocol.SplitTrain, protocol.SplitTest}
	}
	return d.Splits
}

// excludedByJob reports whether the selected job left the image out because its model learned from it.
func (s *Studio) excludedByJob(id string) bool {
	if s.jobID == "" {
		return false
	}
	return slices.Contains(s.liveJobOf(s.jobID).info.Excluded, id)
}
