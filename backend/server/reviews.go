//go:build !js

package server

import (
	"errors"
	"fmt"
	"sort"

	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/protocol"
)

// answerReview answers the review workflow's and class management's messages; ok is false for any other
// type. Every change is pushed to the other tabs, as mask saves are.
func (s *Server) answerReview(c *conn, env protocol.Envelope) (reply any, typ string, err error, ok bool) {
	switch env.Type {
	case protocol.TypeReviewsList:
		var req protocol.ReviewsListRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err), true
		}
		reply, err := s.reviewsList(req.Dataset)
		return reply, protocol.TypeReviews, err, true

	case protocol.TypeReviewSummary:
		reply, err := s.reviewSummary()
		return reply, protocol.TypeReviewCounts, err, true

	case protocol.TypeReviewSet:
		var req protocol.ReviewSetRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err), true
		}
		if _, _, err := s.image(req.Dataset, req.Image); err != nil {
			return nil, "", err, true
		}
		r, changed, err := s.store.SetReview(req.Dataset, req.Image, req.State)
		if errors.Is(err, store.ErrInvalid) {
			return nil, "", badInput("%v", err), true
		}
		if err != nil {
			return nil, "", err, true
		}
		if changed {
			if b, e := protocol.New("", protocol.TypeReviewUpdated, r); e == nil {
				s.hub.broadcast(b, c.id)
			}
		}
		return r, protocol.TypeReview, nil, true

	case protocol.TypeClassUpdate:
		var req protocol.ClassUpdateRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err), true
		}
		if _, err := s.dataset(req.Dataset); err != nil {
			return nil, "", err, true
		}
		if _, err := s.store.UpdateClass(req.Dataset, req.Index, req.Name, req.Color); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				return nil, "", badInput("%v", err), true
			}
			return nil, "", err, true
		}
		reply, typ, err := s.classes(req.Dataset)
		if err == nil {
			if b, e := protocol.New("", protocol.TypeClasses, reply); e == nil {
				s.hub.broadcast(b, c.id)
			}
		}
		return reply, typ, err, true

	case protocol.TypeClassDelete:
		var req protocol.ClassDeleteRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err), true
		}
		reply, err := s.classDelete(c, req)
		return reply, protocol.TypeClassDeleted, err, true
	}
	return nil, "", nil, false
}

// broadcastReview pushes a review that a mask change derived to every tab but the one that caused it,
// which applies protocol.NextReviewState to its own reply (a push to it would arrive before the reply).
func (s *Server) broadcastReview(r *protocol.Review, except uint64) {
	if r == nil {
		return
	}
	if b, err := protocol.New("", protocol.TypeReviewUpdated, *r); err == nil {
		s.hub.broadcast(b, except)
	}
}

func (s *Server) imageIDs(datasetID string) ([]string, error) {
	ds, err := s.dataset(datasetID)
	if err != nil {
		return nil, err
	}
	imgs := ds.Images()
	ids := make([]string, len(imgs))
	for i, im := range imgs {
		ids[i] = im.ID
	}
	return ids, nil
}

func (s *Server) reviewsList(datasetID string) (protocol.ReviewsReply, error) {
	ids, err := s.imageIDs(datasetID)
	if err != nil {
		return protocol.ReviewsReply{}, err
	}
	all, err := s.store.Reviews(datasetID)
	if err != nil {
		return protocol.ReviewsReply{}, err
	}
	out := protocol.ReviewsReply{Dataset: datasetID, Reviews: []protocol.Review{}}
	for _, id := range ids {
		if r, ok := all[id]; ok {
			out.Reviews = append(out.Reviews, r)
		}
	}
	out.Counts, err = s.store.ReviewCounts(datasetID, ids)
	return out, err
}

func (s *Server) reviewSummary() (protocol.ReviewSummaryReply, error) {
	out := protocol.ReviewSummaryReply{Datasets: []protocol.ReviewCounts{}}
	for _, id := range s.order {
		ids, err := s.imageIDs(id)
		if err != nil {
			return out, err
		}
		c, err := s.store.ReviewCounts(id, ids)
		if err != nil {
			return out, err
		}
		out.Datasets = append(out.Datasets, c)
	}
	return out, nil
}

// maskRevert stores a copy of an older version as the newest. Pixels of classes deleted since that
// version become background in the copy: a deleted class stays deleted.
func (s *Server) maskRevert(req protocol.MaskRevertRequest) (protocol.MaskSavedReply, *protocol.Review, error) {
	if _, _, err := s.image(req.Dataset, req.Image); err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	old, _, err := s.store.Mask(req.Dataset, req.Image, req.Version)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	cls, err := s.store.Classes(req.Dataset)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	var known [256]bool
	known[0] = true
	for _, c := range cls {
		known[c.Index] = true
	}
	stale := false
	for i, v := range old.Pix {
		if !known[v] {
			old.Pix[i], stale = 0, true
		}
	}
	var v int
	var review *protocol.Review
	if stale {
		v, review, err = s.store.SaveMaskReview(req.Dataset, req.Image, old)
	} else {
		v, review, err = s.store.RevertMaskReview(req.Dataset, req.Image, req.Version)
	}
	if err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	return protocol.MaskSavedReply{Dataset: req.Dataset, Image: req.Image, Version: v, Empty: old.Count() == 0}, review, nil
}

func (s *Server) classDelete(c *conn, req protocol.ClassDeleteRequest) (protocol.ClassDeletedReply, error) {
	if _, err := s.dataset(req.Dataset); err != nil {
		return protocol.ClassDeletedReply{}, err
	}
	changes, err := s.store.DeleteClass(req.Dataset, req.Index)
	if errors.Is(err, store.ErrInvalid) {
		return protocol.ClassDeletedReply{}, badInput("%v", err)
	}
	if err != nil {
		return protocol.ClassDeletedReply{}, err
	}
	cls, err := s.store.Classes(req.Dataset)
	if err != nil {
		return protocol.ClassDeletedReply{}, fmt.Errorf("list classes of %s: %w", req.Dataset, err)
	}
	out := protocol.ClassDeletedReply{Dataset: req.Dataset, Classes: cls, Masks: []protocol.MaskSavedReply{}}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Image < changes[j].Image })
	if b, e := protocol.New("", protocol.TypeClasses, protocol.ClassesReply{Dataset: req.Dataset, Classes: cls}); e == nil {
		s.hub.broadcast(b, c.id)
	}
	for _, ch := range changes {
		m := protocol.MaskSavedReply{Dataset: req.Dataset, Image: ch.Image, Version: ch.Version, Empty: ch.Empty}
		out.Masks = append(out.Masks, m)
		if b, e := protocol.New("", protocol.TypeMaskUpdated, m); e == nil {
			s.hub.broadcast(b, c.id)
		}
		s.broadcastReview(ch.Review, c.id)
	}
	return out, nil
}
