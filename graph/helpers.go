package graph

import (
	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/graph/model"
	"github.com/wagate/wagate/internal/viewer"
)

// optionalRole maps "no role" to null.
func optionalRole(r viewer.Role) *viewer.Role {
	if r == "" {
		return nil
	}
	return &r
}

// mediaOf describes a message's attachment, downloadable from /media/{id}.
func mediaOf(m *ent.Message) *model.Media {
	if m.MediaMime == nil {
		return nil
	}
	var size int64
	if m.MediaSize != nil {
		size = *m.MediaSize
	}
	return &model.Media{MimeType: *m.MediaMime, FileName: m.MediaName, Size: int(size), URL: "/media/" + string(m.ID)}
}

// extraString reads an address the engine recorded beside the message's columns.
func extraString(m *ent.Message, key string) *string {
	if v, ok := m.Extra[key].(string); ok && v != "" {
		return &v
	}
	return nil
}

// messageDetails is the message's kind-specific data, without the addresses (exposed as
// their own fields).
func messageDetails(m *ent.Message) map[string]any {
	out := map[string]any{}
	for k, v := range m.Extra {
		if k != "chatAlt" && k != "senderAlt" {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
