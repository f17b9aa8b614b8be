package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wagate/wagate/ent"
	"github.com/wagate/wagate/ent/apikey"
	"github.com/wagate/wagate/ent/membership"
	"github.com/wagate/wagate/internal/apperr"
	"github.com/wagate/wagate/internal/audit"
	"github.com/wagate/wagate/internal/database"
	"github.com/wagate/wagate/internal/gid"
	"github.com/wagate/wagate/internal/rule"
	"github.com/wagate/wagate/internal/viewer"
)

// APIKeyPrefix starts every API key: "wag_<public prefix>_<secret>".
const APIKeyPrefix = "wag_"

const prefixAlphabet = "abcdefghijkmnpqrstuvwxyz23456789"

// newAPIKey returns a fresh key, its public prefix (how it is found and shown) and the hash
// stored in its place.
func newAPIKey() (key, prefix string, hash []byte) {
	p := make([]byte, 10)
	_, _ = rand.Read(p)
	for i := range p {
		p[i] = prefixAlphabet[int(p[i])%len(prefixAlphabet)]
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	prefix = string(p)
	key = APIKeyPrefix + prefix + "_" + base64.RawURLEncoding.EncodeToString(secret)
	return key, prefix, HashToken(key)
}

// apiKeyPrefix extracts the public prefix of a key.
func apiKeyPrefix(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, APIKeyPrefix)
	if !ok {
		return "", false
	}
	prefix, secret, ok := strings.Cut(rest, "_")
	return prefix, ok && len(prefix) == 10 && len(secret) == 43
}

var errInvalidKey = apperr.New(apperr.Unauthenticated, "invalid, expired or revoked API key")

// resolveAPIKey authenticates an API key: it acts in its own organization with its own role.
// fresh reads the database even when the key is cached.
func (s *Service) resolveAPIKey(ctx context.Context, key string, fresh bool) (*viewer.Viewer, error) {
	prefix, ok := apiKeyPrefix(key)
	if !ok {
		return nil, errInvalidKey
	}
	hash := HashToken(key)
	k, err := cachedLookup(ctx, s.cache, hash, fresh, func(ctx context.Context) (*keyEntry, error) {
		return s.loadAPIKey(ctx, prefix, hash)
	})
	if err != nil {
		return nil, err
	}
	now := s.now()
	// Again on every use: a cached key expires too.
	if k.expiresAt != nil && !k.expiresAt.After(now) {
		return nil, errInvalidKey
	}
	// Microseconds: what both databases store, so the flushed value equals the one shown.
	s.usage.touch(k.id, now.Truncate(time.Microsecond))
	return &viewer.Viewer{
		Kind:         viewer.KindAPIKey,
		APIKeyID:     k.id,
		KeyCreatorID: k.creator,
		OrgID:        k.org,
		Role:         k.role,
		Orgs:         map[gid.ID]viewer.Role{k.org: k.role},
	}, nil
}

// keyEntry is what a valid API key resolved to.
type keyEntry struct {
	id, org, creator gid.ID
	role             viewer.Role // capped by the creator's
	expiresAt        *time.Time
}

// loadAPIKey reads the key with the given prefix and checks it is the one hashed to hash,
// and still valid.
func (s *Service) loadAPIKey(ctx context.Context, prefix string, hash []byte) (*keyEntry, error) {
	sys := viewer.System(ctx, "authenticate")
	k, err := s.client.APIKey.Query().Where(apikey.Prefix(prefix)).WithCreatedBy().Only(sys)
	switch {
	case ent.IsNotFound(err):
		return nil, errInvalidKey
	case err != nil:
		return nil, fmt.Errorf("looking up API key: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, k.SecretHash) != 1 || k.RevokedAt != nil ||
		(k.ExpiresAt != nil && !k.ExpiresAt.After(s.now())) {
		return nil, errInvalidKey
	}
	role, err := s.keyRole(sys, k)
	if err != nil {
		return nil, err
	}
	// keyRole refused keys without a creator.
	return &keyEntry{id: k.ID, org: k.OrganizationID, creator: *k.CreatedByID, role: role, expiresAt: k.ExpiresAt}, nil
}

var errKeyCreatorGone = apperr.New(apperr.Unauthenticated, "this API key's creator no longer has access to the organization")

// keyRole is the role a key acts with: its own, capped by its creator's current role, so a
// key never outlives its creator's access or keeps a role they lost.
func (s *Service) keyRole(sys context.Context, k *ent.APIKey) (viewer.Role, error) {
	if k.CreatedByID == nil {
		return "", errKeyCreatorGone // the creator's account was deleted
	}
	if k.Edges.CreatedBy == nil || k.Edges.CreatedBy.Disabled {
		return "", errKeyCreatorGone
	}
	m, err := s.client.Membership.Query().
		Where(membership.OrganizationID(k.OrganizationID), membership.UserID(*k.CreatedByID)).Only(sys)
	switch {
	case ent.IsNotFound(err):
		return "", errKeyCreatorGone
	case err != nil:
		return "", fmt.Errorf("checking the key's creator: %w", err)
	}
	if m.Role.AtLeast(k.Role) {
		return k.Role, nil
	}
	return m.Role, nil
}

// CreateAPIKeyInput describes a new key.
type CreateAPIKeyInput struct {
	Name      string
	Role      viewer.Role
	ExpiresAt *time.Time
}

// CreatedAPIKey is a new key with its secret, which is never shown again.
type CreatedAPIKey struct {
	APIKey *ent.APIKey
	Secret string
}

// CreateAPIKey issues a key for the current organization, with a role no higher than the
// creator's (the privacy policy enforces the ceiling).
func (s *Service) CreateAPIKey(ctx context.Context, in CreateAPIKeyInput) (*CreatedAPIKey, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageAPIKeys); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(in.Name)
	if name == "" || len([]rune(name)) > 100 {
		return nil, apperr.Invalid("name", "the name must have 1 to 100 characters")
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(s.now()) {
		return nil, apperr.Invalid("expiresAt", "expiresAt must be in the future")
	}
	key, prefix, hash := newAPIKey()
	v := viewer.FromContext(ctx)
	var out *CreatedAPIKey
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		create := c.APIKey.Create().SetName(name).SetRole(in.Role).SetPrefix(prefix).SetSecretHash(hash).
			SetNillableExpiresAt(in.ExpiresAt)
		// A key made by a key belongs to the person behind that key.
		switch {
		case v.IsUser():
			create.SetCreatedByID(v.UserID)
		case v.KeyCreatorID != "":
			create.SetCreatedByID(v.KeyCreatorID)
		}
		k, err := create.Save(ctx)
		if err != nil {
			return err
		}
		out = &CreatedAPIKey{APIKey: k, Secret: key}
		return audit.Record(ctx, c, audit.Entry{Action: "api_key.create", TargetType: "APIKey", TargetID: k.ID,
			Details: map[string]any{"name": name, "role": in.Role, "prefix": prefix}})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeAPIKey revokes a key of the current organization; it stops working on the next
// request. Revoking twice keeps the first revocation time.
func (s *Service) RevokeAPIKey(ctx context.Context, id gid.ID) (*ent.APIKey, error) {
	var k *ent.APIKey
	err := database.InTx(ctx, s.client, func(ctx context.Context, c *ent.Client) error {
		n, err := c.APIKey.Update().Where(apikey.ID(id), apikey.RevokedAtIsNil()).SetRevokedAt(s.now()).Save(ctx)
		if err != nil {
			return err
		}
		if k, err = c.APIKey.Get(ctx, id); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		return audit.Record(ctx, c, audit.Entry{Action: "api_key.revoke", TargetType: "APIKey", TargetID: id,
			Details: map[string]any{"name": k.Name, "prefix": k.Prefix}})
	})
	return k, err
}

// APIKeys lists an organization's keys, newest first. Only the current organization's are
// readable (privacy); another organization lists none.
func (s *Service) APIKeys(ctx context.Context, org *ent.Organization) ([]*ent.APIKey, error) {
	if err := rule.Require(viewer.FromContext(ctx), viewer.PermManageAPIKeys); err != nil {
		return nil, err
	}
	return database.Client(ctx, s.client).APIKey.Query().Where(apikey.OrganizationID(org.ID)).
		Order(ent.Desc(apikey.FieldID)).All(ctx)
}

// APIKey returns the key a request authenticated with, or nil.
func (s *Service) APIKey(ctx context.Context, v *viewer.Viewer) (*ent.APIKey, error) {
	if v.Kind != viewer.KindAPIKey {
		return nil, nil
	}
	return database.Client(ctx, s.client).APIKey.Get(ctx, v.APIKeyID)
}

// LastUsedAt is when k was last used, counting uses not yet written to the database.
func (s *Service) LastUsedAt(k *ent.APIKey) *time.Time {
	if t, ok := s.usage.pendingAt(k.ID); ok && (k.LastUsedAt == nil || t.After(*k.LastUsedAt)) {
		return &t
	}
	return k.LastUsedAt
}

// usage coalesces API key use: requests record it in memory and a flush writes it in bulk,
// so authenticating a key costs no database write.
type usage struct {
	mu      sync.Mutex
	pending map[gid.ID]time.Time
}

// touch records a use at t, keeping the latest.
func (u *usage) touch(id gid.ID, t time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil {
		u.pending = map[gid.ID]time.Time{}
	}
	if cur, ok := u.pending[id]; !ok || t.After(cur) {
		u.pending[id] = t
	}
}

func (u *usage) pendingAt(id gid.ID) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, ok := u.pending[id]
	return t, ok
}

func (u *usage) take() map[gid.ID]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.pending
	u.pending = nil
	return p
}

// FlushKeyUsage writes the coalesced last-used times.
func (s *Service) FlushKeyUsage(ctx context.Context) error {
	pending := s.usage.take()
	sys := viewer.System(ctx, "api-key-usage")
	for id, t := range pending {
		err := s.client.APIKey.Update().
			Where(apikey.ID(id), apikey.Or(apikey.LastUsedAtIsNil(), apikey.LastUsedAtLT(t))).
			SetLastUsedAt(t).Exec(sys)
		if err != nil {
			for id, t := range pending { // what is left is written by the next flush
				s.usage.touch(id, t)
			}
			return fmt.Errorf("writing API key usage: %w", err)
		}
		delete(pending, id)
	}
	return nil
}
