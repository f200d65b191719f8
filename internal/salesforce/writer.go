package salesforce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// writer writes the records of one call to one sObject, with what the client learned about
// that object: the size of calls it tolerates, whether it is written serially, and which
// fields may be set only on create.
type writer struct {
	c              *Client
	sobject, extID string
	obj            *objectState
	createOnly     []string
}

func (c *Client) writer(sobject, extIDField string) (*writer, error) {
	if err := checkNames(sobject, extIDField); err != nil {
		return nil, err
	}
	obj := c.object(sobject)
	_, _, _, createOnly := obj.snapshot()
	return &writer{c: c, sobject: sobject, extID: extIDField, obj: obj, createOnly: createOnly}, nil
}

// write runs first (the collections or the Bulk API pass) over recs in the object's serial
// turn when it has one, then settles what that pass left: locked records, create-only
// refusals, multi-match external ids.
func (w *writer) write(ctx context.Context, recs []Record, bulk bool) ([]Result, error) {
	if len(recs) == 0 {
		return []Result{}, nil
	}
	done, held, err := w.obj.takeTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { done() }()
	var results []Result
	if bulk {
		results, err = w.bulk(ctx, recs)
	} else {
		results, err = w.collections(ctx, recs)
	}
	if err != nil {
		return nil, err
	}
	if !w.c.cfg.DisableAdaptation {
		w.noteLocks(ctx, results)
	}
	if !held {
		// The object may have gone serial during the first pass, this call's own lock
		// errors included: the records sent again wait for their turn like any other write.
		later, _, err := w.obj.takeTurn(ctx)
		if err != nil {
			return nil, err
		}
		done = later
	}
	return w.settle(ctx, recs, results, bulk)
}

// collections writes recs through sObject Collections calls of the object's tolerated size.
// Children of one parent are sorted together before chunking, and chunks that share a
// parent go one after the other in one lane, so parallel calls rarely wait on one parent's
// lock (reference/salesforce.md §4.2: "sort or group rows by parent"); lanes run in parallel
// within the client's concurrency unless the object is written serially.
func (w *writer) collections(ctx context.Context, recs []Record) ([]Result, error) {
	learned, _, serial, _ := w.obj.snapshot()
	size := cmp.Or(learned, CollectionsMax)
	adaptive := !w.c.cfg.DisableAdaptation
	order, keys := w.order(recs)
	var lanes [][][]int
	for start := 0; start < len(order); start += size {
		chunk := order[start:min(start+size, len(order))]
		sameParent := len(lanes) > 0 && adaptive && firstParent(keys[chunk[0]]) != "" &&
			firstParent(keys[chunk[0]]) == firstParent(keys[order[start-1]])
		if sameParent {
			lanes[len(lanes)-1] = append(lanes[len(lanes)-1], chunk)
			continue
		}
		lanes = append(lanes, [][]int{chunk})
	}

	results := make([]Result, len(recs))
	err := w.each(ctx, serial, len(lanes), func(ctx context.Context, l int) error {
		for _, chunk := range lanes[l] {
			sub := make([]Record, len(chunk))
			for j, i := range chunk {
				sub[j] = recs[i]
			}
			res, _, err := w.splitCall(ctx, sub)
			if err != nil {
				return err
			}
			for j, i := range chunk {
				results[i] = res[j]
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// each runs fn for 0 … n-1, in parallel within MaxConcurrency, or one after the other when
// the object is written serially or the handling is off; the first error cancels the rest.
func (w *writer) each(ctx context.Context, serial bool, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.c.cfg.MaxConcurrency)
	if serial || w.c.cfg.DisableAdaptation {
		g.SetLimit(1)
	}
	for i := range n {
		g.Go(func() error { return fn(gctx, i) })
	}
	return g.Wait()
}

// order is the order in which recs are sent, with each record's parentKey: children of
// one parent together, or with the handling off, input order and no keys.
func (w *writer) order(recs []Record) ([]int, []string) {
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	if w.c.cfg.DisableAdaptation {
		return order, nil
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = parentKey(r)
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	return order, keys
}

// parentKey is a record's parent references in relationship-name order, so that sorting
// by it puts the children of one parent next to each other. Records without a parent
// reference have an empty key.
func parentKey(r Record) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parent, isRef, _ := asReference(k, r[k])
		if !isRef {
			continue
		}
		for _, pk := range slices.Sorted(maps.Keys(parent)) {
			v, _ := cellValue(parent[pk])
			fmt.Fprintf(&b, "%s.%s=%s\x00", k, pk, v)
		}
	}
	return b.String()
}

// firstParent is the first parent reference of a parentKey: chunks whose edges share it
// would lock the same parent, so they share a lane.
func firstParent(key string) string {
	first, _, _ := strings.Cut(key, "\x00")
	return first
}

// splitCall sends recs as one collections call; when the call fails as a whole for its
// size (Config.SplitOn), it sends each half the same way, until a failing record stands
// alone and becomes a rejection carrying Salesforce's error. When both halves of a failed
// call went through at once, the failure was the size, not a record, and the object's calls
// are capped at the half from then on. failedWhole reports whether this call itself failed.
func (w *writer) splitCall(ctx context.Context, recs []Record) (results []Result, failedWhole bool, err error) {
	results, err = w.c.upsertCall(ctx, w.sobject, w.extID, recs)
	whole, ok := w.c.wholeFailure(err, results)
	if !ok {
		return results, false, err
	}
	if len(recs) == 1 || w.c.cfg.DisableAdaptation {
		return failAll(recs, w.extID, whole), true, nil
	}
	mid := (len(recs) + 1) / 2
	left, leftWhole, err := w.splitCall(ctx, recs[:mid])
	if err != nil {
		return nil, true, err
	}
	right, rightWhole, err := w.splitCall(ctx, recs[mid:])
	if err != nil {
		return nil, true, err
	}
	if !leftWhole && !rightWhole {
		w.c.learnCollections(ctx, w.sobject, mid, fmt.Sprintf("a call of %d records failed as a whole (%s: %s) and its halves did not",
			len(recs), whole.StatusCode, whole.Message))
	}
	return append(left, right...), true, nil
}

// failAll gives every record the error of the call that failed as a whole.
func failAll(recs []Record, extIDField string, e RecordError) []Result {
	out := make([]Result, len(recs))
	for i, r := range recs {
		out[i] = Result{ExternalID: externalID(r, extIDField), Errors: []RecordError{e}}
	}
	return out
}

// splits reports whether an error code or message marks a failure of the whole call by its size.
func (c *Client) splits(code, message string) bool {
	for _, m := range c.cfg.SplitOn {
		m = strings.ToLower(m)
		if m != "" && (strings.Contains(strings.ToLower(code), m) || strings.Contains(strings.ToLower(message), m)) {
			return true
		}
	}
	return false
}

// splittable reports whether err is a whole-request failure worth splitting: a 400 or 500
// whose body Config.SplitOn marks (reference/salesforce.md §2.1: whole-request failures come
// back as a top-level array of {message, errorCode}).
func (c *Client) splittable(err error) bool {
	apiErr, ok := errors.AsType[*APIError](err)
	if !ok {
		return false
	}
	switch apiErr.Status {
	case http.StatusBadRequest, http.StatusInternalServerError:
		return c.splits(apiErr.Code, apiErr.Message)
	}
	return false
}

// wholeFailure tells whether a call failed as a whole for its size: its error is splittable,
// or every record came back with an error SplitOn marks (a trigger's limit exception
// reported on each record of the rolled-back transaction). It returns the error to report.
func (c *Client) wholeFailure(err error, results []Result) (RecordError, bool) {
	if err != nil {
		if !c.splittable(err) {
			return RecordError{}, false
		}
		apiErr, _ := errors.AsType[*APIError](err)
		return RecordError{StatusCode: cmp.Or(apiErr.Code, http.StatusText(apiErr.Status)), Message: apiErr.Message}, true
	}
	if len(results) < 2 {
		return RecordError{}, false
	}
	for _, r := range results {
		if r.Success || len(r.Errors) == 0 || !c.splits(r.Errors[0].StatusCode, r.Errors[0].Message) {
			return RecordError{}, false
		}
	}
	return results[0].Errors[0], true
}
