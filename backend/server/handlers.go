//go:build !js

package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/rdre-studio/studio/backend/dataset"
	"github.com/rdre-studio/studio/backend/store"
	"github.com/rdre-studio/studio/shared/mask"
	"github.com/rdre-studio/studio/shared/protocol"
)

// requestError is an error with a protocol error code.
type requestError struct {
	code string
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }

func badInput(format string, args ...any) error {
	return &requestError{protocol.CodeBadInput, fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &requestError{protocol.CodeNotFound, fmt.Errorf(format, args...)}
}

// dispatch answers one frame. Every path ends in exactly one reply or error to c.
func (s *Server) dispatch(ctx context.Context, c *conn, env protocol.Envelope) {
	if s.jobs != nil && s.jobs.HandleJobMessage(ctx, c, env) {
		return
	}
	for _, h := range s.handlers {
		if h.HandleJobMessage(ctx, c, env) {
			return
		}
	}
	reply, typ, err := s.answer(c, env)
	if err != nil {
		code := protocol.CodeInternal
		var re *requestError
		switch {
		case errors.As(err, &re):
			code = re.code
		case errors.Is(err, dataset.ErrNotFound), errors.Is(err, store.ErrNotFound):
			code = protocol.CodeNotFound
		case errors.Is(err, dataset.ErrOutsideRoot):
			code = protocol.CodeForbidden
		case errors.Is(err, mask.ErrCorrupt):
			code = protocol.CodeBadInput
		}
		if code == protocol.CodeInternal {
			s.log.Error("request failed", "type", env.Type, "client", c.id, "err", err)
		}
		c.sendError(env.ID, env.Type, code, err.Error())
		return
	}
	out, err := protocol.New(env.ID, typ, reply)
	if err != nil {
		c.sendError(env.ID, env.Type, protocol.CodeInternal, err.Error())
		return
	}
	c.Send(out)
}

func (s *Server) answer(c *conn, env protocol.Envelope) (any, string, error) {
	switch env.Type {
	case protocol.TypeDatasetsList:
		out := protocol.DatasetsReply{Datasets: []protocol.DatasetInfo{}}
		for _, id := range s.order {
			out.Datasets = append(out.Datasets, s.datasets[id].Info())
		}
		return out, protocol.TypeDatasets, nil

	case protocol.TypeImagesList:
		var req protocol.ImagesListRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		ds, err := s.dataset(req.Dataset)
		if err != nil {
			return nil, "", err
		}
		sums, err := s.store.MaskSummaries(req.Dataset)
		if err != nil {
			return nil, "", fmt.Errorf("list masks of %s: %w", req.Dataset, err)
		}
		cls, err := s.store.Classes(req.Dataset)
		if err != nil {
			return nil, "", fmt.Errorf("list classes of %s: %w", req.Dataset, err)
		}
		className := map[int]string{}
		for _, c := range cls {
			className[c.Index] = c.Name
		}
		imgs := ds.Images()
		out := protocol.ImagesReply{Dataset: req.Dataset, Images: make([]protocol.ImageInfo, len(imgs))}
		for i, im := range imgs {
			if sum, ok := sums[im.ID]; ok {
				im.HasWorkspaceMask = true
				kind := im.Kind
				switch {
				case sum.Pixels == 0:
					kind = protocol.KindGood
				case im.Kind == protocol.KindGood && className[sum.Class] != "":
					kind = className[sum.Class]
				}
				if kind != im.Kind {
					im.DatasetKind, im.Kind = im.Kind, kind
				}
			}
			out.Images[i] = im
		}
		return out, protocol.TypeImages, nil

	case protocol.TypeClassesList:
		var req protocol.ClassesListRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		if _, err := s.dataset(req.Dataset); err != nil {
			return nil, "", err
		}
		return s.classes(req.Dataset)

	case protocol.TypeClassCreate:
		var req protocol.ClassCreateRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		if _, err := s.dataset(req.Dataset); err != nil {
			return nil, "", err
		}
		if _, err := s.store.CreateClass(req.Dataset, req.Name, req.Color); err != nil {
			return nil, "", badInput("create class: %v", err)
		}
		reply, typ, err := s.classes(req.Dataset)
		if err == nil {
			if b, e := protocol.New("", protocol.TypeClasses, reply); e == nil {
				s.hub.broadcast(b, c.id)
			}
		}
		return reply, typ, err

	case protocol.TypeMaskGet:
		var req protocol.MaskGetRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		return s.maskGet(req)

	case protocol.TypeMaskSave:
		var req protocol.MaskSaveRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		reply, review, err := s.maskSave(req)
		if err != nil {
			return nil, "", err
		}
		if b, e := protocol.New("", protocol.TypeMaskUpdated, reply); e == nil {
			s.hub.broadcast(b, c.id)
		}
		s.broadcastReview(review, c.id)
		return reply, protocol.TypeMaskSaved, nil

	case protocol.TypeMaskHistory:
		var req protocol.MaskGetRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		if _, _, err := s.image(req.Dataset, req.Image); err != nil {
			return nil, "", err
		}
		vs, err := s.store.MaskVersions(req.Dataset, req.Image)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, "", err
		}
		if vs == nil {
			vs = []protocol.MaskVersion{}
		}
		return protocol.MaskVersionsReply{Dataset: req.Dataset, Image: req.Image, Versions: vs}, protocol.TypeMaskVersions, nil

	case protocol.TypeMaskRevert:
		var req protocol.MaskRevertRequest
		if err := protocol.DecodePayload(env, &req); err != nil {
			return nil, "", badInput("%v", err)
		}
		if _, _, err := s.image(req.Dataset, req.Image); err != nil {
			return nil, "", err
		}
		reply, review, err := s.maskRevert(req)
		if err != nil {
			return nil, "", err
		}
		if b, e := protocol.New("", protocol.TypeMaskUpdated, reply); e == nil {
			s.hub.broadcast(b, c.id)
		}
		s.broadcastReview(review, c.id)
		return reply, protocol.TypeMaskSaved, nil
	}
	if reply, typ, err, ok := s.answerReview(c, env); ok {
		return reply, typ, err
	}
	return nil, "", &requestError{protocol.CodeUnknown, fmt.Errorf("unknown message type %q", env.Type)}
}

func (s *Server) dataset(id string) (*dataset.Dataset, error) {
	ds, ok := s.datasets[id]
	if !ok {
		return nil, notFound("dataset %q not found", id)
	}
	return ds, nil
}

func (s *Server) image(datasetID, imageID string) (*dataset.Dataset, protocol.ImageInfo, error) {
	ds, err := s.dataset(datasetID)
	if err != nil {
		return nil, protocol.ImageInfo{}, err
	}
	im, ok := ds.Image(imageID)
	if !ok {
		return nil, protocol.ImageInfo{}, notFound("image %q not found in dataset %s", imageID, datasetID)
	}
	return ds, im, nil
}

func (s *Server) classes(datasetID string) (any, string, error) {
	cls, err := s.store.Classes(datasetID)
	if err != nil {
		return nil, "", fmt.Errorf("list classes of %s: %w", datasetID, err)
	}
	if cls == nil {
		cls = []protocol.LabelClass{}
	}
	return protocol.ClassesReply{Dataset: datasetID, Classes: cls}, protocol.TypeClasses, nil
}

// imageSize reads the image header for its size (cheap; no pixel decoding).
func imageSize(ds *dataset.Dataset, id string) (int, int, error) {
	if im, ok := ds.Image(id); ok && im.Width > 0 && im.Height > 0 {
		return im.Width, im.Height, nil
	}
	img, err := ds.Decode(id)
	if err != nil {
		return 0, 0, err
	}
	b := img.Bounds()
	return b.Dx(), b.Dy(), nil
}

func (s *Server) maskGet(req protocol.MaskGetRequest) (any, string, error) {
	ds, im, err := s.image(req.Dataset, req.Image)
	if err != nil {
		return nil, "", err
	}
	m, v, err := s.store.Mask(req.Dataset, req.Image, req.Version)
	switch {
	case err == nil:
		return protocol.MaskReply{Dataset: req.Dataset, Image: req.Image, Version: v, Source: "workspace", Width: m.W, Height: m.H, RLE: m.Encode()}, protocol.TypeMask, nil
	case !errors.Is(err, store.ErrNotFound):
		return nil, "", err
	case req.Version != 0:
		return nil, "", notFound("image %s has no mask version %d", req.Image, req.Version)
	}
	gt, w, h, has, err := ds.GroundTruth(req.Image)
	if err != nil {
		return nil, "", fmt.Errorf("ground truth of %s: %w", req.Image, err)
	}
	if !has {
		w, h, err = imageSize(ds, req.Image)
		if err != nil {
			return nil, "", fmt.Errorf("size of %s: %w", req.Image, err)
		}
		empty, err := mask.New(w, h)
		if err != nil {
			return nil, "", err
		}
		return protocol.MaskReply{Dataset: req.Dataset, Image: req.Image, Source: "none", Width: w, Height: h, RLE: empty.Encode()}, protocol.TypeMask, nil
	}
	lm, err := mask.New(w, h)
	if err != nil {
		return nil, "", err
	}
	idx := uint8(1)
	if cls, err := s.store.Classes(req.Dataset); err == nil {
		for _, c := range cls {
			if c.Name == im.Kind || store.KindOf(c) == im.Kind {
				idx = uint8(c.Index)
			}
		}
	}
	for i, d := range gt {
		if d {
			lm.Pix[i] = idx
		}
	}
	return protocol.MaskReply{Dataset: req.Dataset, Image: req.Image, Source: "dataset", Width: w, Height: h, RLE: lm.Encode()}, protocol.TypeMask, nil
}

func (s *Server) maskSave(req protocol.MaskSaveRequest) (protocol.MaskSavedReply, *protocol.Review, error) {
	ds, _, err := s.image(req.Dataset, req.Image)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	w, h, err := imageSize(ds, req.Image)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, fmt.Errorf("size of %s: %w", req.Image, err)
	}
	// The size check comes before decoding: a 14-byte encoding can declare a 16384x16384 mask.
	mw, mh, err := mask.Header(req.RLE)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, badInput("mask of %s: %v", req.Image, err)
	}
	if mw != w || mh != h || req.Width != w || req.Height != h {
		return protocol.MaskSavedReply{}, nil, badInput("mask of %s is %dx%d (declared %dx%d), the image is %dx%d", req.Image, mw, mh, req.Width, req.Height, w, h)
	}
	m, err := mask.DecodeSize(req.RLE, w, h)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, badInput("mask of %s: %v", req.Image, err)
	}
	cls, err := s.store.Classes(req.Dataset)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, err
	}
	known := map[uint8]bool{0: true}
	for _, c := range cls {
		known[uint8(c.Index)] = true
	}
	for _, v := range m.Pix {
		if !known[v] {
			return protocol.MaskSavedReply{}, nil, badInput("mask of %s uses class index %d, which dataset %s does not define", req.Image, v, req.Dataset)
		}
	}
	newest := 0
	if vs, err := s.store.MaskVersions(req.Dataset, req.Image); err == nil && len(vs) > 0 {
		newest = vs[len(vs)-1].Version
	}
	v, review, err := s.store.SaveMaskReview(req.Dataset, req.Image, m)
	if err != nil {
		return protocol.MaskSavedReply{}, nil, fmt.Errorf("save mask of %s: %w", req.Image, err)
	}
	return protocol.MaskSavedReply{Dataset: req.Dataset, Image: req.Image, Version: v, Empty: m.Count() == 0, Conflict: req.BaseVersion < newest}, review, nil
}
