package webui

import (
	"context"
	"net/http"
	"slices"
	"strconv"

	"github.com/sjbackfill/backfill/internal/runstore"
)

// runView is a run's page: its state and progress, activity log and rejected records.
type runView struct {
	Layout   layout
	Live     runLive
	Alert    *pageError
	Rejected rejectedPage
}

// runLive is the part of a run's page that refreshes while the run is not finished.
type runLive struct {
	Run *runstore.Run
	// Events are the latest activity, newest first.
	Events    []runstore.Event
	EventsErr string
}

// rejectedPage is one page of a run's rejected-records ledger.
type rejectedPage struct {
	Rows        []runstore.Rejected
	Total       int64
	Dropped     int64
	From, To    int
	Prev, Next  int // offsets of the neighbouring pages; -1 when there is none
	Err         string
	CanRedrive  bool
	RedriveNote string
}

func (h *Handler) runFromPath(r *http.Request) (*runstore.Run, error) {
	id := r.PathValue("id")
	if !runstore.ValidID(id) {
		return nil, &pageError{Status: http.StatusNotFound, Message: "There is no such run."}
	}
	return h.d.Runs.Get(r.Context(), id)
}

func (h *Handler) serveRun(w http.ResponseWriter, r *http.Request) {
	run, err := h.runFromPath(r)
	if err != nil {
		h.renderError(w, r, err)
		return
	}
	offset, err := strconv.Atoi(r.URL.Query().Get("offset"))
	if err != nil || offset < 0 {
		offset = 0
	}
	h.renderRun(w, r, http.StatusOK, run, offset, nil)
}

func (h *Handler) renderRun(w http.ResponseWriter, r *http.Request, status int, run *runstore.Run, offset int, alert error) {
	v := runView{Layout: h.layout("Run " + run.ID), Live: h.runLive(r.Context(), run), Rejected: h.rejectedPage(r.Context(), run, offset)}
	if alert != nil {
		v.Alert = h.classify(r, alert)
	}
	h.render(w, status, "run", v)
}

func (h *Handler) runLive(ctx context.Context, run *runstore.Run) runLive {
	v := runLive{Run: run}
	events, err := h.d.Ledger.Events(ctx, run.ID, h.cfg.EventsShown)
	if err != nil {
		v.EventsErr = "The activity log could not be read; " + h.hidden(ctx, "run page could not read the activity log", err) + "."
	}
	slices.Reverse(events)
	v.Events = events
	return v
}

func (h *Handler) rejectedPage(ctx context.Context, run *runstore.Run, offset int) rejectedPage {
	size := h.cfg.RejectedPageSize
	rows, total, err := h.d.Ledger.RejectedPage(ctx, run.ID, offset, size)
	p := rejectedPage{Rows: rows, Total: total, Dropped: run.RejectedDropped, From: offset + 1, To: offset + len(rows), Prev: -1, Next: -1}
	if err != nil {
		p.Err = "The rejected records could not be read; " + h.hidden(ctx, "run page could not read the rejected records", err) + "."
		return p
	}
	if offset > 0 {
		p.Prev = max(0, offset-size)
	}
	if int64(offset+size) < total {
		p.Next = offset + size
	}
	switch {
	case total == 0:
	case !run.State.Terminal():
		p.RedriveNote = "Rejected records can be re-driven once the run has finished."
	case run.Scope.DryRun:
		p.RedriveNote = "A dry run wrote nothing, so there is nothing to re-drive."
	default:
		p.CanRedrive = true
	}
	return p
}

func (h *Handler) serveRunLive(w http.ResponseWriter, r *http.Request) {
	run, err := h.runFromPath(r)
	if err != nil {
		h.renderError(w, r, err)
		return
	}
	h.render(w, http.StatusOK, "run-live", h.runLive(r.Context(), run))
}

// runAction pauses, resumes or cancels a run, or re-drives its rejected records in a new run.
func (h *Handler) runAction(w http.ResponseWriter, r *http.Request) {
	run, err := h.runFromPath(r)
	if err != nil {
		h.renderError(w, r, err)
		return
	}
	var act func(context.Context, string) (*runstore.Run, error)
	switch r.PathValue("action") {
	case "pause":
		act = h.d.Runs.Pause
	case "resume":
		act = h.d.Runs.Resume
	case "cancel":
		act = h.d.Runs.Cancel
	case "retry-rejected":
		act = h.d.Runs.RetryRejected
	default:
		h.renderError(w, r, &pageError{Status: http.StatusNotFound, Message: "Runs can be paused, resumed, cancelled or have their rejected records re-driven (retry-rejected); there is no " + strconv.Quote(r.PathValue("action")) + "."})
		return
	}
	next, err := act(r.Context(), run.ID)
	if err != nil {
		pe := h.classify(r, err) // once: an internal error is logged when it is classified
		h.renderRun(w, r, pe.Status, run, 0, pe)
		return
	}
	// A re-drive is a new run; everything else changed this one.
	http.Redirect(w, r, "/runs/"+next.ID, http.StatusSeeOther)
}
