package merger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluice-dev/sluice/internal/bus"
	"github.com/sluice-dev/sluice/internal/config"
	"github.com/sluice-dev/sluice/internal/objstore"
	"github.com/sluice-dev/sluice/internal/table"
)

// evolve merges cols into the table's registered schema with compare-and-set: on a conflict
// (another merger updated it first) it reloads and evolves again.
func (c *committer) evolve(ctx context.Context, tbl string, cols []table.ColumnType, opts table.Options) (*table.Schema, bool, error) {
	key := schemaRegistryKey(tbl)
	for range 100 {
		prev, rev, err := c.loadSchema(ctx, key)
		if err != nil {
			return nil, false, err
		}
		next, changed := table.Evolve(tbl, prev, cols, opts)
		if !changed {
			return next, false, nil
		}
		doc, err := json.Marshal(next)
		if err != nil {
			return nil, false, permanent(fmt.Errorf("encode schema: %w", err))
		}
		if prev == nil {
			_, err = c.schemas.Create(ctx, key, doc)
		} else {
			_, err = c.schemas.Update(ctx, key, doc, rev)
		}
		if err == nil {
			return next, true, nil
		}
		if !isConflict(err) {
			return nil, false, fmt.Errorf("write schema %s: %w", key, err)
		}
		c.log.Debug("schema registry conflict, retrying", "table", tbl)
	}
	return nil, false, fmt.Errorf("write schema %s: too many conflicts", key)
}

// schemaRegistryKey is the registry key of a table: "table.<table-token>" (docs/DESIGN.md), except
// that '~' (the token's escape character) is written '=': JetStream KV keys do not allow '~', and
// '=' never occurs in a token (TableToken escapes it), so the mapping stays reversible.
func schemaRegistryKey(tbl string) string {
	return "table." + strings.ReplaceAll(bus.TableToken(tbl), "~", "=")
}

func (c *committer) loadSchema(ctx context.Context, key string) (*table.Schema, uint64, error) {
	e, err := c.schemas.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, permanent(fmt.Errorf("read schema %s: %w", key, err))
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read schema %s: %w", key, err)
	}
	var s table.Schema
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, permanent(fmt.Errorf("decode schema %s (revision %d): %w", key, e.Revision(), err))
	}
	return &s, e.Revision(), nil
}

func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// writeSchemaDoc copies the registry document of s to _schemas/<table>/v<N>.json: always when this
// batch changed the schema, else once per process when it is missing (a crash between the
// registry update and the copy).
func (c *committer) writeSchemaDoc(ctx context.Context, s *table.Schema, changed bool) error {
	key := schemaKey(s.Table, s.Version)
	if !changed {
		if _, ok := c.schemaDocs.Load(key); ok {
			return nil
		}
		if _, err := c.out.Stat(ctx, key); err == nil {
			c.schemaDocs.Store(key, true)
			return nil
		} else if !errors.Is(err, objstore.ErrNotFound) {
			return fmt.Errorf("stat %s: %w", key, err)
		}
	}
	doc, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return permanent(err)
	}
	if err := c.out.Put(ctx, key, bytes.NewReader(append(doc, '\n'))); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	c.schemaDocs.Store(key, true)
	return nil
}

// KnownTables lists the tables the schema registry knows (every table a batch was ever merged into), sorted.
func KnownTables(ctx context.Context, b *bus.Bus) ([]string, error) {
	kv, err := b.Schemas(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var s table.Schema
		if json.Unmarshal(e.Value(), &s) == nil && s.Table != "" {
			out = append(out, s.Table)
		}
	}
	slices.Sort(out)
	return out, nil
}

// PartnersKey is where a merger records the partner configuration it merges under (its YAML; ""
// for the defaults), in the schema registry's bucket: `sluice replay` and `dlq retry` without
// --config commit under it, so a retry does not drop the data-quality rules, hints, overrides and
// null tokens the batch was merged under.
const PartnersKey = "config.partners"

// recordPartners records the configuration once the merger has checked its rules against the
// registry (a configuration refused at start is never recorded). The last merger to start wins.
func (c *committer) recordPartners(ctx context.Context) error {
	var source []byte
	if c.quality.partners != nil {
		source = c.quality.partners.Source
	}
	e, err := c.schemas.Get(ctx, PartnersKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		_, err = c.schemas.Create(ctx, PartnersKey, source)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return c.recordPartners(ctx) // another merger just did: compare with it
		}
		return err
	case err != nil:
		return err
	case bytes.Equal(e.Value(), source):
		return nil
	}
	_, err = c.schemas.Update(ctx, PartnersKey, source, e.Revision())
	return err
}

// RecordedPartners is the configuration the mergers recorded (recordPartners); nil when none was, or
// it is the defaults.
func RecordedPartners(ctx context.Context, b *bus.Bus) (*config.File, error) {
	kv, err := b.Schemas(ctx)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e, err := kv.Get(ctx, PartnersKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case len(e.Value()) == 0:
		return nil, nil
	}
	f, err := config.Parse(e.Value(), "recorded by the mergers ("+PartnersKey+")")
	if err != nil {
		return nil, fmt.Errorf("the partner configuration the mergers recorded: %w (pass --config)", err)
	}
	return f, nil
}
