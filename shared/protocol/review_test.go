package protocol

import (
	"encoding/json"
	"testing"
)

func TestReview_Validate_States(t *testing.T) {
	for _, s := range ReviewStates {
		if err := (Review{Dataset: "d", Image: "i", State: s}).Validate(); err != nil {
			t.Errorf("state %q: %v", s, err)
		}
	}
	for _, r := range []Review{{Dataset: "d", Image: "i", State: "done"}, {Image: "i", State: ReviewLabelled}, {Dataset: "d", State: ReviewLabelled}} {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v validated", r)
		}
	}
}

func TestReviewSetRequest_DecodePayload_RefusesUnknownFields(t *testing.T) {
	env, err := New("1", TypeReviewSet, ReviewSetRequest{Dataset: "d", Image: "a.png", State: ReviewNoDefect})
	if err != nil {
		t.Fatal(err)
	}
	var got ReviewSetRequest
	if err := DecodePayload(env, &got); err != nil || got.State != ReviewNoDefect || got.Image != "a.png" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	env.Payload = json.RawMessage(`{"dataset":"d","image":"a.png","sate":"labelled"}`)
	if err := DecodePayload(env, &got); err == nil {
		t.Fatal("a misspelt field decoded")
	}
}

func TestReviewCounts_Done(t *testing.T) {
	c := ReviewCounts{Images: 10, Labelled: 3, NoDefect: 4, Unlabelled: 3}
	if c.Done() != 7 {
		t.Fatalf("done %d", c.Done())
	}
}

func TestNextReviewState_Rules(t *testing.T) {
	for _, c := range []struct {
		cur    string
		defect bool
		want   string
	}{
		{ReviewUnlabelled, true, ReviewLabelled},
		{ReviewNoDefect, true, ReviewLabelled},
		{ReviewLabelled, true, ReviewLabelled},
		{ReviewLabelled, false, ReviewUnlabelled},
		{ReviewNoDefect, false, ReviewNoDefect},
		{ReviewUnlabelled, false, ReviewUnlabelled},
	} {
		if got := NextReviewState(c.cur, c.defect); got != c.want {
			t.Errorf("NextReviewState(%q, %v) = %q, want %q", c.cur, c.defect, got, c.want)
		}
	}
}
