//go:build !js

package server

import (
	"testing"

	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

func TestServer_Review_SetDeriveAndPush(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := dial(t, hs, nil)
	other := dial(t, hs, nil)
	var dss protocol.DatasetsReply
	c.call("1", protocol.TypeDatasetsList, nil, &dss)
	ds := dss.Datasets[0]
	var imgs protocol.ImagesReply
	c.call("2", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: ds.ID}, &imgs)
	img := imgs.Images[0]

	var r protocol.Review
	c.call("3", protocol.TypeReviewSet, protocol.ReviewSetRequest{Dataset: ds.ID, Image: img.ID, State: protocol.ReviewNoDefect}, &r)
	if r.State != protocol.ReviewNoDefect {
		t.Fatalf("set: %+v", r)
	}
	if p := other.read(); p.Type != protocol.TypeReviewUpdated {
		t.Fatalf("other tab got %s, want review.updated", p.Type)
	}
	var list protocol.ReviewsReply
	c.call("4", protocol.TypeReviewsList, protocol.ReviewsListRequest{Dataset: ds.ID}, &list)
	if list.Counts.NoDefect != 1 || list.Counts.Images != len(imgs.Images) || len(list.Reviews) != 1 {
		t.Fatalf("list: %+v", list.Counts)
	}

	// A save with defect pixels makes it labelled; the other tab hears of both.
	var m protocol.MaskReply
	c.call("5", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ds.ID, Image: img.ID}, &m)
	lm, _ := mask.New(m.Width, m.Height)
	lm.Pix[0] = 1
	var saved protocol.MaskSavedReply
	if env := c.call("6", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: ds.ID, Image: img.ID, Width: m.Width, Height: m.Height, RLE: lm.Encode()}, &saved); env.Type != protocol.TypeMaskSaved {
		t.Fatalf("save: %s %s", env.Type, env.Payload)
	}
	if p := other.read(); p.Type != protocol.TypeMaskUpdated {
		t.Fatalf("other tab got %s, want mask.updated", p.Type)
	}
	if p := other.read(); p.Type != protocol.TypeReviewUpdated {
		t.Fatalf("other tab got %s, want review.updated", p.Type)
	}
	var sum protocol.ReviewSummaryReply
	c.call("7", protocol.TypeReviewSummary, nil, &sum)
	if len(sum.Datasets) != 1 || sum.Datasets[0].Labelled != 1 || sum.Datasets[0].NoDefect != 0 {
		t.Fatalf("summary %+v", sum)
	}

	// The verdict "no defect" is refused while the mask has pixels.
	env := c.call("8", protocol.TypeReviewSet, protocol.ReviewSetRequest{Dataset: ds.ID, Image: img.ID, State: protocol.ReviewNoDefect}, nil)
	if e := errorOf(t, env); e.Code != protocol.CodeBadInput {
		t.Fatalf("error %+v", e)
	}
	env = c.call("9", protocol.TypeReviewSet, protocol.ReviewSetRequest{Dataset: ds.ID, Image: "nope.png", State: protocol.ReviewLabelled}, nil)
	if e := errorOf(t, env); e.Code != protocol.CodeNotFound {
		t.Fatalf("error %+v", e)
	}
}

func TestServer_Class_UpdateDelete(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := dial(t, hs, nil)
	var dss protocol.DatasetsReply
	c.call("1", protocol.TypeDatasetsList, nil, &dss)
	ds := dss.Datasets[0]
	var cls protocol.ClassesReply
	c.call("2", protocol.TypeClassesList, protocol.ClassesListRequest{Dataset: ds.ID}, &cls)
	if len(cls.Classes) < 2 {
		t.Fatalf("demo classes %+v", cls.Classes)
	}
	// Rename to another class's name: bad input, nothing changes.
	env := c.call("3", protocol.TypeClassUpdate, protocol.ClassUpdateRequest{Dataset: ds.ID, Index: cls.Classes[0].Index, Name: cls.Classes[1].Name}, nil)
	if e := errorOf(t, env); e.Code != protocol.CodeBadInput {
		t.Fatalf("error %+v", e)
	}
	var upd protocol.ClassesReply
	c.call("4", protocol.TypeClassUpdate, protocol.ClassUpdateRequest{Dataset: ds.ID, Index: cls.Classes[0].Index, Name: "renamed", Color: "#010203"}, &upd)
	if upd.Classes[0].Name != "renamed" || upd.Classes[0].Color != "#010203" {
		t.Fatalf("update %+v", upd.Classes[0])
	}
	// A dataset class cannot be deleted; a user class can, and its pixels go.
	env = c.call("5", protocol.TypeClassDelete, protocol.ClassDeleteRequest{Dataset: ds.ID, Index: cls.Classes[0].Index}, nil)
	if e := errorOf(t, env); e.Code != protocol.CodeBadInput {
		t.Fatalf("error %+v", e)
	}
	c.call("6", protocol.TypeClassCreate, protocol.ClassCreateRequest{Dataset: ds.ID, Name: "temp"}, &cls)
	temp := cls.Classes[len(cls.Classes)-1]
	var imgs protocol.ImagesReply
	c.call("7", protocol.TypeImagesList, protocol.ImagesListRequest{Dataset: ds.ID}, &imgs)
	img := imgs.Images[0]
	var m protocol.MaskReply
	c.call("8", protocol.TypeMaskGet, protocol.MaskGetRequest{Dataset: ds.ID, Image: img.ID}, &m)
	lm, _ := mask.New(m.Width, m.Height)
	lm.Pix[0] = uint8(temp.Index)
	var saved protocol.MaskSavedReply
	c.call("9", protocol.TypeMaskSave, protocol.MaskSaveRequest{Dataset: ds.ID, Image: img.ID, Width: m.Width, Height: m.Height, RLE: lm.Encode()}, &saved)
	var del protocol.ClassDeletedReply
	if env := c.call("10", protocol.TypeClassDelete, protocol.ClassDeleteRequest{Dataset: ds.ID, Index: temp.Index}, &del); env.Type != protocol.TypeClassDeleted {
		t.Fatalf("delete: %s %s", env.Type, env.Payload)
	}
	if len(del.Masks) != 1 || !del.Masks[0].Empty || del.Masks[0].Version != saved.Version+1 {
		t.Fatalf("deleted: %+v", del.Masks)
	}
	// Reverting to the version with the deleted class's pixels keeps them background.
	var rev protocol.MaskSavedReply
	c.call("11", protocol.TypeMaskRevert, protocol.MaskRevertRequest{Dataset: ds.ID, Image: img.ID, Version: saved.Version}, &rev)
	if !rev.Empty {
		t.Fatalf("revert brought back a deleted class's pixels: %+v", rev)
	}
}
