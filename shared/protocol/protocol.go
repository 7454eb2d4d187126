// Package protocol is the websocket wire format shared by the server (backend/) and the browser (app/).
//
// Every frame is one JSON Envelope. A client request carries an ID of its own choosing; every reply,
// progress message and error caused by that request carries the same ID, so a client can match them.
// Messages the server pushes on its own (a mask saved by another tab, a job another client started)
// carry the ID of the request that caused them on the originating connection, or none.
//
// Compatibility: V is the protocol version. A server answers a frame whose V it does not speak with an
// error of code CodeVersion and keeps the connection open. New message types and new optional fields do
// not change V; a change of meaning does.
//
// Limits: a message larger than MaxFrameBytes, counted after per-message decompression, closes the
// connection with close code 1009 (message too big) and an explanation in the close reason; everything
// smaller that fails to parse is answered with an error envelope and the connection stays open.
package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Version is the protocol version this build speaks.
const Version = 1

// MaxFrameBytes bounds one websocket frame. A 4096x4096 label mask, run-length encoded and base64'd,
// stays far below this; a frame above it is hostile or a bug.
const MaxFrameBytes = 16 << 20

// Envelope is one websocket frame.
type Envelope struct {
	V       int             `json:"v"`
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Message types. Requests are sent by the browser, replies and pushes by the server.
const (
	// Server -> client, once on connect.
	TypeHello = "hello"
	// Server -> client: the request with this ID failed.
	TypeError = "error"

	TypeDatasetsList = "datasets.list" // -> TypeDatasets
	TypeDatasets     = "datasets"
	TypeImagesList   = "images.list" // ImagesListRequest -> TypeImages
	TypeImages       = "images"
	TypeClassesList  = "classes.list" // ClassesListRequest -> TypeClasses
	TypeClassCreate  = "class.create" // ClassCreateRequest -> TypeClasses
	TypeClasses      = "classes"

	TypeMaskGet      = "mask.get"      // MaskGetRequest -> TypeMask
	TypeMask         = "mask"          // MaskReply
	TypeMaskSave     = "mask.save"     // MaskSaveRequest -> TypeMaskSaved, and TypeMaskUpdated to every other client
	TypeMaskSaved    = "mask.saved"    // MaskSavedReply
	TypeMaskUpdated  = "mask.updated"  // MaskSavedReply, pushed
	TypeMaskHistory  = "mask.history"  // MaskGetRequest -> TypeMaskVersions
	TypeMaskVersions = "mask.versions" // MaskVersionsReply
	TypeMaskRevert   = "mask.revert"   // MaskRevertRequest -> TypeMaskSaved
)

// Error codes carried by ErrorPayload.Code.
const (
	CodeMalformed = "malformed" // not JSON, or not an envelope
	CodeVersion   = "version"   // V not spoken by this server
	CodeUnknown   = "unknown"   // Type not known
	CodeBadInput  = "bad_input" // payload fails validation
	CodeNotFound  = "not_found" // dataset, image, job or model does not exist
	CodeConflict  = "conflict"  // e.g. a mask save against a stale base version
	CodeInternal  = "internal"  // the server failed; the message says what
	CodeTooLarge  = "too_large" // a payload above a per-type limit
	CodeForbidden = "forbidden" // token missing or wrong
	CodeCancelled = "cancelled" // a job was cancelled
)

// ErrorPayload is the payload of TypeError.
type ErrorPayload struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RequestType is the type of the frame that failed, when it could be read.
	RequestType string `json:"requestType,omitempty"`
}

// Hello is the payload of TypeHello.
type Hello struct {
	Server   string `json:"server"`   // "rdre-studio <version>"
	Protocol int    `json:"protocol"` // Version
}

// DatasetInfo describes one registered dataset.
type DatasetInfo struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Root       string   `json:"root"`   // absolute path on the server, shown to the user, never sent back
	Layout     string   `json:"layout"` // one of the Layout constants (see docs/datasets.md)
	Categories []string `json:"categories"`
	Kinds      []string `json:"kinds"` // defect types found (folder names), "good" first
	Splits     []string `json:"splits,omitempty"`
	Images     int      `json:"images"`
	// Warnings name every file the index skipped or could not pair (an image in a defect folder without a
	// mask, a mask without an image, an unreadable file, a duplicate key), so nothing is left out silently.
	Warnings []string `json:"warnings,omitempty"`
}

// Dataset layouts.
const (
	LayoutMVTec       = "mvtec"        // CATEGORY/{train,test}/KIND/*.png + CATEGORY/ground_truth/KIND/NNN_mask.png (also MPDD)
	LayoutMVTec2      = "mvtec2"       // MVTec AD 2: train/good, validation/good, test_public/{good,bad}, test_private*
	LayoutMVTec3D     = "mvtec3d"      // MVTec 3D-AD, RGB part: {train,validation}/good/rgb, test/KIND/{rgb,gt}
	LayoutLOCO        = "loco"         // MVTec LOCO AD: ground_truth/KIND/NNN/000.png ... (several masks per image)
	LayoutVisA        = "visa"         // VisA: split_csv/1cls.csv + OBJ/Data/{Images,Masks}
	LayoutBTAD        = "btad"         // BTAD: NN/train/ok, NN/test/{ok,ko}, NN/ground_truth/ko/STEM.png
	LayoutImagesMasks = "images+masks" // CLASS/Imgs/x.jpg + CLASS/Imgs/x.png (magnetic-tile style)
	LayoutPlain       = "plain"        // ROOT/good, ROOT/KIND with optional masks
)

// Splits.
const (
	SplitTrain      = "train"
	SplitValidation = "validation" // defect-free images held out from training (MVTec AD 2, 3D-AD, LOCO)
	SplitTest       = "test"
	// The unlabelled test splits of MVTec AD 2: inference only, never evaluated.
	SplitTestPrivate      = "test_private"
	SplitTestPrivateMixed = "test_private_mixed"
)

// KindUnlabelled is the kind of an image whose label the dataset does not give (MVTec AD 2's private
// test splits).
const KindUnlabelled = "unlabelled"

// KindGood is the defect type of a defect-free image.
const KindGood = "good"

// ImageInfo describes one image of a dataset. ID is the image's path relative to the dataset root,
// slash-separated; the server resolves it inside the root and never trusts it further.
type ImageInfo struct {
	ID       string `json:"id"`
	Category string `json:"category"`
	Split    string `json:"split"`
	// Kind is the effective defect type: the folder's, unless a workspace mask says otherwise (a mask
	// drawn on a good image makes it a sample of the mask's main class; a cleared mask makes it good).
	Kind string `json:"kind"`
	// DatasetKind is the folder's defect type when it differs from Kind.
	DatasetKind string `json:"datasetKind,omitempty"`
	// Key names the image's map in `rdre infer` output and `rdre eval` input: "KIND/STEM" in a dataset of
	// one category, "CATEGORY/KIND/STEM" when it holds several. Unique within a split.
	Key string `json:"key,omitempty"`
	// MaskID is the ground-truth mask's path relative to the dataset root, empty when the dataset has none.
	// Where a dataset gives several mask files per image (MVTec LOCO), it is the first; MaskCount says how
	// many there are.
	MaskID    string `json:"maskId,omitempty"`
	MaskCount int    `json:"maskCount,omitempty"`
	// HasWorkspaceMask is set when the workspace holds a drawn mask for this image.
	HasWorkspaceMask bool `json:"hasWorkspaceMask,omitempty"`
	Width            int  `json:"width,omitempty"`
	Height           int  `json:"height,omitempty"`
}

// DatasetsReply is the payload of TypeDatasets.
type DatasetsReply struct {
	Datasets []DatasetInfo `json:"datasets"`
}

// ImagesListRequest is the payload of TypeImagesList.
type ImagesListRequest struct {
	Dataset string `json:"dataset"`
}

// ImagesReply is the payload of TypeImages.
type ImagesReply struct {
	Dataset string      `json:"dataset"`
	Images  []ImageInfo `json:"images"`
}

// LabelClass is a defect category a mask pixel can belong to. Index is the pixel value used in label
// masks (1..255; 0 is background).
type LabelClass struct {
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Color  string `json:"color"`  // "#rrggbb"
	Source string `json:"source"` // "dataset" (a defect folder) or "user"
	// Kind is the defect folder a "dataset" class was made from. It stays when the class is renamed, so
	// the dataset's ground truth and the next start still find the class (empty: the Name).
	Kind string `json:"kind,omitempty"`
}

// ClassesListRequest is the payload of TypeClassesList.
type ClassesListRequest struct {
	Dataset string `json:"dataset"`
}

// ClassCreateRequest is the payload of TypeClassCreate.
type ClassCreateRequest struct {
	Dataset string `json:"dataset"`
	Name    string `json:"name"`
	Color   string `json:"color"`
}

// ClassesReply is the payload of TypeClasses.
type ClassesReply struct {
	Dataset string       `json:"dataset"`
	Classes []LabelClass `json:"classes"`
}

// MaskGetRequest is the payload of TypeMaskGet and TypeMaskHistory.
type MaskGetRequest struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	// Version 0 asks for the newest version.
	Version int `json:"version,omitempty"`
}

// MaskReply is the payload of TypeMask. Version 0 with Source "dataset" is the dataset's own ground
// truth; Source "none" means the image has no mask anywhere (an all-background mask of Width x Height).
type MaskReply struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	Version int    `json:"version"`
	Source  string `json:"source"` // "workspace", "dataset" or "none"
	Width   int    `json:"width"`
	Height  int    `json:"height"`
	// RLE is the label mask in the encoding of package mask (base64 in JSON).
	RLE []byte `json:"rle"`
}

// MaskSaveRequest is the payload of TypeMaskSave.
type MaskSaveRequest struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	// BaseVersion is the version the edit started from; a save against an older base than the newest is
	// still stored (the newest write wins, history keeps both) and the reply says so.
	BaseVersion int    `json:"baseVersion"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	RLE         []byte `json:"rle"`
}

// MaskSavedReply is the payload of TypeMaskSaved and TypeMaskUpdated. It is sent only after the write
// transaction has committed to disk.
type MaskSavedReply struct {
	Dataset  string `json:"dataset"`
	Image    string `json:"image"`
	Version  int    `json:"version"`
	Empty    bool   `json:"empty"`              // the mask has no defect pixel: the image counts as good
	Conflict bool   `json:"conflict,omitempty"` // BaseVersion was older than the newest stored version
}

// MaskVersion is one stored version of an image's mask.
type MaskVersion struct {
	Version int    `json:"version"`
	SavedAt string `json:"savedAt"` // RFC 3339
	Pixels  int    `json:"pixels"`  // defect pixels
}

// MaskVersionsReply is the payload of TypeMaskVersions.
type MaskVersionsReply struct {
	Dataset  string        `json:"dataset"`
	Image    string        `json:"image"`
	Versions []MaskVersion `json:"versions"`
}

// MaskRevertRequest is the payload of TypeMaskRevert: it stores a copy of Version as a new version.
type MaskRevertRequest struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	Version int    `json:"version"`
}

// New builds an envelope of the current version around payload.
func New(id, typ string, payload any) (Envelope, error) {
	env := Envelope{V: Version, ID: id, Type: typ}
	if payload != nil {
		raw, err := json.Marshal(payload)
		if err != nil {
			return Envelope{}, fmt.Errorf("encode %s payload: %w", typ, err)
		}
		env.Payload = raw
	}
	return env, nil
}

// Decode reads one frame. It fails on anything that is not a JSON object with a type, and on a frame
// larger than MaxFrameBytes. What it allocates is proportional to the frame (a copy of the payload and
// of the strings).
func Decode(frame []byte) (Envelope, error) {
	if len(frame) > MaxFrameBytes {
		return Envelope{}, fmt.Errorf("frame of %d bytes is larger than %d", len(frame), MaxFrameBytes)
	}
	var env Envelope
	if err := json.Unmarshal(frame, &env); err != nil {
		return Envelope{}, fmt.Errorf("frame is not a JSON envelope: %w", err)
	}
	if env.Type == "" {
		return Envelope{}, fmt.Errorf("frame has no type")
	}
	return env, nil
}

// DecodePayload unmarshals env's payload into dst, refusing unknown fields so that a typo in a client
// is an error rather than a silently ignored field.
func DecodePayload(env Envelope, dst any) error {
	if len(env.Payload) == 0 {
		return fmt.Errorf("%s: payload missing", env.Type)
	}
	dec := json.NewDecoder(bytes.NewReader(env.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s payload: %w", env.Type, err)
	}
	return nil
}
