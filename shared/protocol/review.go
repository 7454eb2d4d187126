package protocol

import "fmt"

// Review states of an image: how far a person's labelling work on it has come. They describe the
// workspace's work only: a mask that came with the dataset does not make an image "labelled".
//
// The rules, applied by the server so that every tab sees the same state:
//   - No record is ReviewUnlabelled: nobody has looked at the image yet, it needs work.
//   - Saving (or reverting to) a workspace mask with defect pixels makes the image ReviewLabelled,
//     whatever its state was, reviewed-no-defect included: pixels say there is a defect.
//   - Saving an empty mask over ReviewLabelled makes it ReviewUnlabelled again (the defect is gone but
//     nobody has said the image is fine); an empty save leaves the other states as they are.
//   - A user sets ReviewNoDefect (a good image someone checked) or ReviewUnlabelled explicitly. The
//     server refuses ReviewNoDefect while the newest workspace mask has defect pixels: the state never
//     contradicts the saved mask (clear the mask first). A user can also set ReviewLabelled explicitly
//     (e.g. to accept the dataset's own ground truth as checked).
const (
	ReviewUnlabelled = "unlabelled"
	ReviewLabelled   = "labelled"
	ReviewNoDefect   = "reviewed-no-defect"
)

// NextReviewState is the state after a workspace mask save (or revert) on an image in state cur:
// the rules above, shared by the server, which stores the result, and the browser, which applies it to
// its own save's reply instead of waiting for a push.
func NextReviewState(cur string, hasDefect bool) string {
	switch {
	case hasDefect:
		return ReviewLabelled
	case cur == ReviewLabelled:
		return ReviewUnlabelled
	}
	return cur
}

// ReviewStates lists the states in the order the UI shows them.
var ReviewStates = []string{ReviewUnlabelled, ReviewLabelled, ReviewNoDefect}

// ValidReviewState reports whether s is one of the review states.
func ValidReviewState(s string) bool {
	for _, v := range ReviewStates {
		if s == v {
			return true
		}
	}
	return false
}

// Review sources: who set a state.
const (
	ReviewByUser = "user" // set explicitly from the editor or a client
	ReviewByMask = "mask" // derived from a mask save (or revert, or a class deletion rewriting masks)
)

// Message types of the review workflow.
const (
	TypeReviewsList   = "reviews.list"   // ReviewsListRequest -> TypeReviews
	TypeReviews       = "reviews"        // ReviewsReply
	TypeReviewSet     = "review.set"     // ReviewSetRequest -> TypeReview, and TypeReviewUpdated to every other client
	TypeReview        = "review"         // Review
	TypeReviewUpdated = "review.updated" // Review, pushed to every other client (also after a mask save changed a state)
	TypeReviewSummary = "review.summary" // no payload -> TypeReviewCounts
	TypeReviewCounts  = "review.counts"  // ReviewSummaryReply

	TypeClassUpdate  = "class.update"  // ClassUpdateRequest -> TypeClasses, and TypeClasses pushed to every other client
	TypeClassDelete  = "class.delete"  // ClassDeleteRequest -> TypeClassDeleted, TypeClasses and TypeMaskUpdated pushed to every other client
	TypeClassDeleted = "class.deleted" // ClassDeletedReply
)

// Review is an image's review state as stored in the workspace (reviews/<datasetID>/<imageID>).
type Review struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	State   string `json:"state"`
	By      string `json:"by"` // ReviewByUser or ReviewByMask
	At      string `json:"at"` // RFC 3339, when the state was set
	// MaskVersion is the workspace mask version the state was derived from (ReviewByMask), else 0.
	MaskVersion int `json:"maskVersion,omitempty"`
}

// Validate checks the fields a client sets.
func (r Review) Validate() error {
	if r.Dataset == "" || r.Image == "" {
		return fmt.Errorf("review needs a dataset and an image")
	}
	if !ValidReviewState(r.State) {
		return fmt.Errorf("review state %q is not one of %v", r.State, ReviewStates)
	}
	return nil
}

// ReviewsListRequest is the payload of TypeReviewsList.
type ReviewsListRequest struct {
	Dataset string `json:"dataset"`
}

// ReviewsReply is the payload of TypeReviews: the stored reviews of the dataset's images (images
// without one are unlabelled) and the counts over the dataset's current images.
type ReviewsReply struct {
	Dataset string       `json:"dataset"`
	Reviews []Review     `json:"reviews"`
	Counts  ReviewCounts `json:"counts"`
}

// ReviewSetRequest is the payload of TypeReviewSet.
type ReviewSetRequest struct {
	Dataset string `json:"dataset"`
	Image   string `json:"image"`
	State   string `json:"state"`
}

// ReviewCounts counts a dataset's images by review state. Unlabelled is Images minus the others.
type ReviewCounts struct {
	Dataset    string `json:"dataset"`
	Images     int    `json:"images"`
	Labelled   int    `json:"labelled"`
	NoDefect   int    `json:"noDefect"`
	Unlabelled int    `json:"unlabelled"`
}

// Done is the number of images that need no more work.
func (c ReviewCounts) Done() int { return c.Labelled + c.NoDefect }

// ReviewSummaryReply is the payload of TypeReviewCounts: the counts of every dataset.
type ReviewSummaryReply struct {
	Datasets []ReviewCounts `json:"datasets"`
}

// ClassUpdateRequest is the payload of TypeClassUpdate: a rename and/or a recolour of one class. An
// empty Name or Color keeps the current one. The index (the pixel value) never changes, so saved masks
// keep their meaning.
type ClassUpdateRequest struct {
	Dataset string `json:"dataset"`
	Index   int    `json:"index"`
	Name    string `json:"name,omitempty"`
	Color   string `json:"color,omitempty"`
}

// ClassDeleteRequest is the payload of TypeClassDelete. Deleting a class turns its pixels into
// background: every image whose newest workspace mask has such pixels gets a new mask version without
// them (older versions stay in the history; reverting to one drops the pixels of deleted classes).
// Classes that come from a dataset's defect folders cannot be deleted (the dataset's own ground truth
// is drawn in them); they can be renamed, recoloured, hidden and locked.
type ClassDeleteRequest struct {
	Dataset string `json:"dataset"`
	Index   int    `json:"index"`
}

// ClassDeletedReply is the payload of TypeClassDeleted.
type ClassDeletedReply struct {
	Dataset string       `json:"dataset"`
	Classes []LabelClass `json:"classes"`
	// Masks lists the images that got a new mask version without the class's pixels.
	Masks []MaskSavedReply `json:"masks"`
}
