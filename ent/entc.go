//go:build ignore

package main

import (
	"fmt"
	"log"

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
		entgql.WithSchemaHook(addMemberSearch),
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
		},
	}, entc.Extensions(ex))
	if err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}

// addMemberSearch gives Organization.members the `search` argument of the API contract, so
// the field stays an ent edge (eager-loaded by field collection) rather than a second field.
func addMemberSearch(_ *gen.Graph, s *ast.Schema) error {
	org, ok := s.Types["Organization"]
	if !ok {
		return fmt.Errorf("type Organization not found")
	}
	members := org.Fields.ForName("members")
	if members == nil {
		return fmt.Errorf("field Organization.members not found")
	}
	members.Arguments = append(members.Arguments, &ast.ArgumentDefinition{
		Name:        "search",
		Description: "Only members whose name or e-mail contains this text (case-insensitive).",
		Type:        ast.NamedType("String", nil),
	})
	return nil
}
