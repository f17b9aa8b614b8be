//go:build ignore

package main

import (
	"fmt"
	"log"
	"slices"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
	"github.com/vektah/gqlparser/v2/ast"
)

func main() {
	ex, err := entgql.NewExtension(
		entgql.WithConfigPath("../gqlgen.yml"),
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath("../schema/ent.graphql"),
		entgql.WithWhereInputs(true),
		entgql.WithSchemaHook(addMemberSearch, cursorFromMethod),
	)
	if err != nil {
		log.Fatalf("creating entgql extension: %v", err)
	}
	err = entc.Generate("./schema", &gen.Config{
		Features: []gen.Feature{
			gen.FeaturePrivacy,
			gen.FeatureEntQL,
			gen.FeatureLock,
			gen.FeatureUpsert,
			gen.FeatureExecQuery,
			gen.FeatureIntercept,
		},
		Templates: []*gen.Template{
			gen.MustParse(gen.NewTemplate("gid").ParseFiles("./template/gid.tmpl")),
			gen.MustParse(gen.NewTemplate("bind").ParseFiles("./template/bind.tmpl")),
			gen.MustParse(gen.NewTemplate("cursor").ParseFiles("./template/cursor.tmpl")),
		},
	}, entc.Extensions(ex))
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}

// addMemberSearch gives Organization.members the `search` argument of the API contract, so
// the field stays an ent edge (eager-loaded by field collection) rather than a second field.
func addMemberSearch(_ *gen.Graph, s *ast.Schema) error {
	members, err := schemaField(s, "Organization", "members")
	if err != nil {
		return err
	}
	members.Arguments = append(members.Arguments, &ast.ArgumentDefinition{
		Name:        "search",
		Description: "Only members whose name or e-mail contains this text (case-insensitive).",
		Type:        ast.NamedType("String", nil),
	})
	return nil
}

// cursorFromMethod binds Event.cursor, which entgql maps to the seq column (so that field
// collection selects it), to the ent.Event.Cursor method rather than to the int64 field:
// GraphQL then renders it inline, where a resolver would run on a goroutine per event.
func cursorFromMethod(_ *gen.Graph, s *ast.Schema) error {
	cursor, err := schemaField(s, "Event", "cursor")
	if err != nil {
		return err
	}
	cursor.Directives = slices.DeleteFunc(cursor.Directives, func(d *ast.Directive) bool { return d.Name == "goField" })
	return nil
}

// schemaField returns a field of a type of the schema entgql generated.
func schemaField(s *ast.Schema, typ, name string) (*ast.FieldDefinition, error) {
	t, ok := s.Types[typ]
	if !ok {
		return nil, fmt.Errorf("type %s not found", typ)
	}
	f := t.Fields.ForName(name)
	if f == nil {
		return nil, fmt.Errorf("field %s.%s not found", typ, name)
	}
	return f, nil
}
