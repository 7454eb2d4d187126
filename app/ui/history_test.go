package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/rdre-studio/studio/shared/protocol"
)

func TestGroupHistory_StrokesOfOneSittingTogether(t *testing.T) {
	at := func(min, sec int) string {
		return time.Date(2026, 12, 1, 10, min, sec, 0, time.UTC).Format(time.RFC3339)
	}
	vs := []protocol.MaskVersion{
		{Version: 1, SavedAt: at(0, 0), Pixels: 10}, {Version: 2, SavedAt: at(0, 20), Pixels: 20}, {Version: 3, SavedAt: at(1, 50), Pixels: 30},
		{Version: 4, SavedAt: at(30, 0), Pixels: 5}, // after a break
		{Version: 5, SavedAt: "garbled", Pixels: 6},
		{Version: 6, SavedAt: at(31, 0), Pixels: 7},
	}
	g := groupHistory(vs)
	if len(g) != 4 {
		t.Fatalf("%d groups, want 4: %+v", len(g), g)
	}
	if g[3].last().Version != 3 || len(g[3].Versions) != 3 || g[3].Versions[2].Version != 1 {
		t.Fatalf("first sitting: %+v", g[3])
	}
	if g[2].last().Version != 4 || g[1].last().Version != 5 || !g[1].To.IsZero() || g[0].last().Version != 6 {
		t.Fatalf("groups newest first: %+v", g)
	}
	now := time.Date(2026, 12, 1, 10, 35, 0, 0, time.UTC)
	if l := g[3].label(now); !strings.HasPrefix(l, "v1–v3 · 3 saves · 30 px · ") || !strings.Contains(l, "min ago") {
		t.Fatalf("label %q", l)
	}
	if l := g[1].label(now); !strings.Contains(l, "unknown time") {
		t.Fatalf("label of an unreadable time %q", l)
	}
	if l := humanTime(now.Add(-20*time.Second), now); l != "just now" {
		t.Fatalf("humanTime: %q", l)
	}
}
