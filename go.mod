module github.com/rdre-studio/studio

go 1.26.8

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/coder/websocket v1.8.14
	github.com/gorilla/websocket v1.5.3
	github.com/maxence-charriere/go-app/v10 v10.1.11
	github.com/yalue/onnxruntime_go v1.35.0
	go.etcd.io/bbolt v1.5.0
	golang.org/x/image v0.48.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
