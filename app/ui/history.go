package ui

import (
	"fmt"
	"time"

	"github.com/rdre-studio/studio/shared/protocol"
)

// historyGap separates editing sessions in the history: autosave stores a version after every stroke,
// so versions saved closer together than this belong to one sitting and are shown as one entry.
const historyGap = 2 * time.Minute

// historyGroup is a run of versions saved without a pause longer than historyGap, newest first in
// Versions.
type historyGroup struct {
	Versions []protocol.MaskVersion
	From, To time.Time // first and last save; zero when the times could not be read
}

// last is the group's newest version: what "revert" goes back to.
func (g historyGroup) last() protocol.MaskVersion { return g.Versions[0] }

// groupHistory groups versions (oldest first, as the server lists them) into sittings, newest first.
// A version whose time cannot be read starts a group of its own.
func groupHistory(versions []protocol.MaskVersion) []historyGroup {
	var groups []historyGroup
	for _, v := range versions {
		t, err := time.Parse(time.RFC3339Nano, v.SavedAt)
		n := len(groups)
		if err == nil && n > 0 && !groups[n-1].To.IsZero() && t.Sub(groups[n-1].To) <= historyGap && t.Sub(groups[n-1].To) >= 0 {
			g := &groups[n-1]
			g.Versions = append([]protocol.MaskVersion{v}, g.Versions...)
			g.To = t
			continue
		}
		g := historyGroup{Versions: []protocol.MaskVersion{v}}
		if err == nil {
			g.From, g.To = t, t
		}
		groups = append(groups, g)
	}
	for i, j := 0, len(groups)-1; i < j; i, j = i+1, j-1 {
		groups[i], groups[j] = groups[j], groups[i]
	}
	return groups
}

// humanTime says when, relative to now for the last day and as a local date beyond.
func humanTime(t, now time.Time) string {
	if t.IsZero() {
		return "unknown time"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return t.Local().Format("2 Jan 15:04")
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 24*time.Hour && t.Local().YearDay() == now.Local().YearDay():
		return "today " + t.Local().Format("15:04")
	}
	return t.Local().Format("2 Jan 2006 15:04")
}

// label describes a group: its versions, saves and time span.
func (g historyGroup) label(now time.Time) string {
	newest, oldest := g.Versions[0], g.Versions[len(g.Versions)-1]
	if len(g.Versions) == 1 {
		return fmt.Sprintf("v%d · %d px · %s", newest.Version, newest.Pixels, humanTime(g.To, now))
	}
	return fmt.Sprintf("v%d–v%d · %d saves · %d px · %s", oldest.Version, newest.Version, len(g.Versions), newest.Pixels, humanTime(g.To, now))
}
