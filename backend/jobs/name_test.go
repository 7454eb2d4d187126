package jobs

import (
	"testing"

	"github.com/rdre-studio/studio/backend/inference"
)

func TestModelName_FloorRecord_SaysWhatShips(t *testing.T) {
	for _, tc := range []struct{ floor, want string }{
		{"", "model.onnx (mtd, mobilenet_v2)"},
		{`{"format":2,"checked":true,"score":"both","map":"recipe"}`, "model.onnx (mtd, mobilenet_v2, floor: RD-RE map, combined score)"},
		{`{"format":2,"checked":true,"score":"baseline","map":"recipe"}`, "model.onnx (mtd, mobilenet_v2, floor: RD-RE map, plain RD score)"},
		{`{"format":2,"checked":true,"score":"baseline","map":"baseline"}`, "model.onnx (mtd, mobilenet_v2, floor: plain RD)"},
		{`{"format":1,"checked":true,"score":"recipe","map":"recipe"}`, "model.onnx (mtd, mobilenet_v2)"},
		{`{"format":2,"checked":false,"why":"12 images","score":"recipe","map":"recipe"}`, "model.onnx (mtd, mobilenet_v2)"},
		{`not json`, "model.onnx (mtd, mobilenet_v2)"},
	} {
		in := inference.Info{Path: "/runs/r1/model.onnx", Category: "mtd", Teacher: "mobilenet_v2", Metadata: map[string]string{}}
		if tc.floor != "" {
			in.Metadata[inference.KeyFloor] = tc.floor
		}
		if got := modelName(in); got != tc.want {
			t.Errorf("floor %s: name %q, want %q", tc.floor, got, tc.want)
		}
	}
	if got := modelName(inference.Info{Path: `C:\m\demo.onnx`}); got != "demo.onnx" {
		t.Errorf("no category: %q", got)
	}
}
