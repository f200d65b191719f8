package runstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Skilljar has no "changed since" filter, so catch-ups find changed learners by comparing a
// fingerprint of each learner's activity (from GET /v1/users) with the watermark: the
// fingerprints the last successful run of the same scope saw. Rows whose mapped content has
// not changed since it was last written are skipped by a hash kept per record.

func (s *Store) watermarkKey(sc Scope) string { return s.opts.Prefix + "watermark:" + ScopeKey(sc) }
func (s *Store) rowHashKey(sobject string) string {
	return s.opts.Prefix + "rowhash:" + sobject
}

// Fingerprints returns, for each learner, the fingerprint a comparison starts from: the
// scope's watermark for the first pass, this run's own snapshot for later passes. A learner
// never seen gets "".
func (s *Store) Fingerprints(ctx context.Context, run *Run, pass int, learners []string) ([]string, error) {
	if len(learners) == 0 {
		return nil, nil
	}
	key := s.watermarkKey(run.Scope)
	if pass > 1 {
		key = s.snapshotKey(run.ID)
	}
	vals, err := s.rdb.HMGet(ctx, key, learners...).Result()
	if err != nil {
		return nil, fmt.Errorf("read fingerprints: %w", err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// HasWatermark reports whether a successful run of the scope left a watermark.
func (s *Store) HasWatermark(ctx context.Context, sc Scope) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.watermarkKey(sc)).Result()
	return n > 0, err
}

// ChangedPage returns learners pass found changed, in the order found, and how many there are.
func (s *Store) ChangedPage(ctx context.Context, id string, pass, offset, limit int) ([]string, int64, error) {
	key := s.changedKey(id, pass)
	total, err := s.rdb.LLen(ctx, key).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read changed learners: %w", err)
	}
	items, err := s.rdb.LRange(ctx, key, int64(offset), int64(offset+limit-1)).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("read changed learners: %w", err)
	}
	return items, total, nil
}

// Members reports, for each learner, whether the run found it in one of its domains.
func (s *Store) Members(ctx context.Context, id string, learners []string) ([]bool, error) {
	if len(learners) == 0 {
		return nil, nil
	}
	return s.rdb.SMIsMember(ctx, s.membersKey(id), strs(learners)...).Result()
}

// PromoteSnapshot makes the run's snapshot the watermark of its scope. Only a run that
// succeeded may call it: a failed catch-up must leave the old watermark, or the changes it
// did not write would never be looked for again.
func (s *Store) PromoteSnapshot(ctx context.Context, run *Run) error {
	// An org without learners leaves no snapshot, and then no watermark either.
	err := promoteScript.Run(ctx, s.rdb, []string{s.snapshotKey(run.ID), s.watermarkKey(run.Scope)}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("promote the snapshot of run %s: %w", run.ID, err)
	}
	return nil
}

var promoteScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('RENAME', KEYS[1], KEYS[2]) end
return 1`)

// RowHashes returns the content hash last written for each record, "" when none.
func (s *Store) RowHashes(ctx context.Context, sobject string, extIDs []string) ([]string, error) {
	if len(extIDs) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.rowHashKey(sobject), extIDs...).Result()
	if err != nil {
		return nil, fmt.Errorf("read row hashes: %w", err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// SetRowHashes records the content Salesforce accepted. It runs after the batch's commit: a
// crash in between only makes the next catch-up write those rows again.
func (s *Store) SetRowHashes(ctx context.Context, sobject string, hashes map[string]string) error {
	if len(hashes) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(hashes))
	for ext, h := range hashes {
		args = append(args, ext, h)
	}
	if err := s.rdb.HSet(ctx, s.rowHashKey(sobject), args...).Err(); err != nil {
		return fmt.Errorf("save row hashes: %w", err)
	}
	return nil
}
