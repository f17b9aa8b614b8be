package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/mixin"

	"github.com/wagate/wagate/internal/gid"
)

// gidAnnotation tells the gid template which prefix belongs to which table. Internal types
// are not Relay nodes, so node(id:) does not resolve them.
type gidAnnotation struct {
	Prefix   string
	Internal bool
}

func (gidAnnotation) Name() string { return "GID" }

// bindAnnotation marks a type whose entities wagate builds itself — from rows it wrote with
// statements of its own, or knowing only the ID; the bind template gives its client a Bind
// method for them.
type bindAnnotation struct {
	Enabled bool // an annotation without fields would read as absent in templates
}

func (bindAnnotation) Name() string { return "Bind" }

// idMixin gives a type a prefixed global ID (see internal/gid).
type idMixin struct {
	mixin.Schema
	prefix   string
	internal bool
}

func withID(prefix string) idMixin { return idMixin{prefix: prefix} }

// withInternalID is withID for types that are never exposed through the API.
func withInternalID(prefix string) idMixin { return idMixin{prefix: prefix, internal: true} }

func (m idMixin) Fields() []ent.Field {
	return []ent.Field{
		field.String("id").
			GoType(gid.ID("")).
			DefaultFunc(func() gid.ID { return gid.New(m.prefix) }).
			MaxLen(40).
			NotEmpty().
			Immutable(),
	}
}

func (m idMixin) Annotations() []schema.Annotation {
	return []schema.Annotation{gidAnnotation{Prefix: m.prefix, Internal: m.internal}}
}

// timeMixin records when a row was created and last changed.
type timeMixin struct{ mixin.Schema }

func (timeMixin) Fields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable().
			Annotations(entgql.OrderField("CREATED_AT")),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}
