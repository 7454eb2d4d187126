package protocol

import (
	"strings"
	"testing"

	"github.com/rdre-studio/studio/internal/testalloc"
)

// requests are the payload types a client sends; the server decodes each with DecodePayload.
func requests() []any {
	return []any{
		&ImagesListRequest{}, &ClassesListRequest{}, &ClassCreateRequest{}, &MaskGetRequest{},
		&MaskSaveRequest{}, &MaskRevertRequest{}, &JobStartRequest{}, &JobRef{},
		&ReviewsListRequest{}, &ReviewSetRequest{}, &ClassUpdateRequest{}, &ClassDeleteRequest{},
	}
}

func TestDecode_TooLarge(t *testing.T) {
	frame := `{"v":1,"type":"x","payload":"` + strings.Repeat("a", MaxFrameBytes) + `"}`
	if _, err := Decode([]byte(frame)); err == nil {
		t.Fatal("a frame over MaxFrameBytes decoded")
	}
}

// FuzzEnvelope decodes arbitrary frames as envelopes and their payloads as every request type. Besides
// not panicking, no frame may allocate more than a small multiple of its size.
func FuzzEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":"1","type":"images.list","payload":{"dataset":"d"}}`,
		`{"v":1,"id":"2","type":"mask.save","payload":{"dataset":"d","image":"a/b.png","baseVersion":0,"width":2,"height":1,"rle":"UgECAQEC"}}`,
		`{"v":1,"id":"3","type":"job.start","payload":{"dataset":"d","model":"m","noiseStd":0.1}}`,
		`{"v":1,"type":"mask.get","payload":{"dataset":"\u00e9\ud83d\ude00","image":"x","version":3}}`,
		`{"v":2,"type":"hello"}`,
		`[1,2,3]`, `{"type":""}`, `{"v":1e400,"type":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		n := testalloc.Bytes(func() {
			env, err := Decode(frame)
			if err != nil {
				return
			}
			for _, dst := range requests() {
				DecodePayload(env, dst)
			}
		})
		// Decode copies the payload and the strings once; each of the 8 payload decodes copies at most
		// its strings again (base64 shrinks), plus the decoders' fixed state.
		if limit := uint64(12*len(frame) + 64<<10); n > limit {
			t.Fatalf("%d-byte frame allocated %d bytes", len(frame), n)
		}
	})
}
