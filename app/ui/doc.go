// Package ui is the RD-RE Studio browser UI: go-app v10 components that the server pre-renders and
// app.wasm runs in the browser.
//
// Contract:
//   - Register installs the routes ("/" datasets, "/dataset?id=ID" image grid, "/image?dataset=ID&id=IMAGE"
//     viewer and mask editor) and must be called by both the server and the wasm entry point.
//   - Everything the UI knows comes from the server: lists, classes and masks over the websocket at /ws
//     (shared/protocol envelopes, masks in shared/mask encoding), pixels over HTTP (/api/image, /api/thumb,
//     /api/gt, /api/heatmap). The browser never builds a file path; image IDs are opaque to it.
//   - Elements that tests and users rely on carry the data-testid values listed in issue 6 (dataset-list,
//     image-grid, image-tile, editor-canvas, tool-brush, tool-eraser, tool-polygon, tool-fill, brush-size,
//     undo, redo, class-select, save-status, heatmap-toggle, threshold-slider, compare-toggle,
//     export-masks). save-status reads "saved" only once the server confirmed the last change was
//     committed; its data-version attribute is the stored version it refers to. Issue 13 adds
//     class-error (why Add failed, under the form), tool-message (why a fill did nothing),
//     fatal-error (the "error: reload" bar: a handler panicked or the Go program died; save-status then
//     reads "error: reload" and connection "error"), threshold-value's data-value (the threshold in the
//     model's units) and heatmap-canvas's data-scale-lo / data-scale-hi (the job's colour scale).
//   - The grid's evaluation panel (issues 5 and 7) carries model-select, mask-select, category-select (multi-
//     category datasets only), noise-std, evaluate, job-cancel (while the shown job runs), job-state,
//     job-progress ("done/total" text; data-done, data-total), job-error, live-metrics (data-state
//     "partial" or "final"; one tr[data-metric=KEY] per metric with a metric-value cell whose data-value is
//     the exact number, empty for null, and whose text is "—" with the warning as title when the metric is
//     undefined), metrics-state, report-html / report-json / report-csv / report-md, compare-select and
//     report-compare; eval-no-model replaces the controls when the server has no model; eval-collapse
//     folds the panel; metrics-computing shows while a job has all its maps and computes the exact metrics. The shown job is
//     the URL's job parameter; a page that shows none follows a job another client starts on its dataset.
//   - Job state on the page is the union of a job.get snapshot and the job.progress / job.metrics /
//     job.done pushes, which may arrive in either order: it only moves forward (evalstate.go).
//   - Blocking work (websocket requests) runs in ctx.Async; its results come back through ctx.Dispatch.
//     Pointer handling bypasses go-app's render cycle: strokes paint straight into the mask canvas and
//     only the touched rectangle is repainted, so a stroke costs the same on a 256 or a 4096 pixel image.
//   - Measurements for tests and reports live on window: rdreGridReadyAt (performance.now() when the grid
//     first shows tiles) and rdreStrokeLatency (per pointer move: from the event's timeStamp to the end of
//     its repaint, in ms; it includes the browser's own wait to align input with animation frames),
//     rdreStrokeWork (per pointer move: the editor's own work, handler start to repaint done, in ms) and
//     rdreSaveMs (per mask save: send to the server's commit confirmation, in ms); rdreEval (the last
//     evaluation started from the page: job, clickAt, firstProgressAt, firstScoreAt, finalAt, in
//     performance.now() ms).
package ui
