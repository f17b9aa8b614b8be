package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

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

// orgByID are the Organization fields answered from its ID alone: what it owns, each list a
// query of its own under the viewer's privacy rules, and the viewer's role in it.
var orgByID = map[string]bool{
	"__typename": true, "id": true, "viewerRole": true,
	"events": true, "sessions": true, "members": true, "auditLog": true,
	"apiKeys": true, "webhooks": true, "invitations": true,
}

// selectsOnlyOrgID reports whether the Organization the current field resolves to is asked
// for nothing but orgByID fields (fragments included), so its row need not be read: a
// dashboard's event or session list then costs one query, not two.
func selectsOnlyOrgID(ctx context.Context) bool {
	for _, f := range graphql.CollectFieldsCtx(ctx, organizationImplementors) {
		if !orgByID[f.Name] {
			return false
		}
	}
	return true
}
