package whatsapp

import "testing"

// Events without NUL, nearly all, come back as they were, nothing copied; one with NUL comes
// back changed, and the caller's stays as it was.
func TestWithoutNULCopiesOnlyWhatItChanges(t *testing.T) {
	msgs := []Inbound{{ID: "a", Options: []string{"x"}, Media: &MediaRef{FileName: "f"}}}
	if got := withoutNUL(msgs); &got[0] != &msgs[0] || got[0].Media != msgs[0].Media {
		t.Fatal("a backlog without NUL was copied")
	}
	msgs[0].Media.FileName = "f\x00"
	got := withoutNUL(msgs)
	if &got[0] == &msgs[0] || got[0].Media == msgs[0].Media || got[0].Media.FileName != "f\uFFFD" ||
		msgs[0].Media.FileName != "f\x00" || got[0].Options[0] != "x" {
		t.Fatalf("got %+v (media %+v), the caller's %+v", got[0], got[0].Media, msgs[0])
	}
	var ev Event = GroupUpdate{Group: "g", Changes: map[string]any{"subject": "s\x00", "n": 1}}
	if g := withoutNUL(ev).(GroupUpdate); g.Changes["subject"] != "s\uFFFD" || g.Changes["n"] != 1 ||
		ev.(GroupUpdate).Changes["subject"] != "s\x00" {
		t.Fatalf("group update %+v", g)
	}
}
