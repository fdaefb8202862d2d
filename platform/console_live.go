package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/collectorhq/collector/api"
	"github.com/collectorhq/collector/internal/units"
	"github.com/collectorhq/collector/platform/access"
	"github.com/collectorhq/collector/queue"
)

// Live parts of the console: Server-Sent Events streams that a page's
// script follows (live.js, joblog.js). A stream re-reads what its page
// shows every LiveInterval through the same reads as the page, sends
// what changed, and ends after maxStream (the browser reconnects) or at
// shutdown. Nothing in an event is more than the page itself shows.

const (
	// maxLiveIDs bounds the collectors one stream follows (a page's rows).
	maxLiveIDs = 200
	// maxStream bounds a stream's life; EventSource reconnects.
	maxStream = 10 * time.Minute
)

// sse is an event stream on w.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *Server) startSSE(w http.ResponseWriter, r *http.Request) (*sse, context.Context, context.CancelFunc) {
	rc := http.NewResponseController(w)
	// The server's write timeout is for answers, not streams.
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	ctx, cancel := context.WithTimeout(r.Context(), maxStream)
	stop := context.AfterFunc(s.polls, cancel) // shutdown ends streams
	return &sse{w: w, rc: rc}, ctx, func() { stop(); cancel() }
}

// send writes one event; data is JSON.
func (e *sse) send(event string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", event, b); err != nil {
		return err
	}
	return e.rc.Flush()
}

// tick waits for the next look, or the end of the stream.
func (s *Server) tick(ctx context.Context) bool {
	t := time.NewTimer(s.cfg.LiveInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// collectorEvent is a row of the collectors page, as its cells show it.
type collectorEvent struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason"`
	Last         string `json:"last"`
	Version      string `json:"version"`
	Engine       string `json:"engine"`
	Capacity     string `json:"capacity"`
	Free         string `json:"free"`
	Running      string `json:"running"`
}

func collectorEventOf(c api.Collector) collectorEvent {
	ev := collectorEvent{ID: c.ID, Status: c.Status, StatusReason: c.StatusReason, Last: "–", Version: "–", Engine: "–", Capacity: "–", Free: "–", Running: "–"}
	if c.LastHeartbeatAt != nil {
		ev.Last = c.LastHeartbeatAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	if hb := c.LastHeartbeat; hb != nil {
		ev.Version, ev.Engine = hb.Version, hb.Engine.Kind+" "+hb.Engine.Version
		ev.Capacity = fmt.Sprintf("%d CPU, %s", hb.Capacity.CPUs, units.Bytes(hb.Capacity.MemoryTotalBytes))
		ev.Free = units.Bytes(hb.Capacity.MemoryFreeBytes)
		ev.Running = fmt.Sprint(hb.RunningJobs)
	}
	return ev
}

// collectorEvents streams the status of the collectors ?ids= (a page's
// rows): an event for each row whose cells changed.
func (s *Server) collectorEvents(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	var ids []string
	for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
		if api.ValidCollectorID(id) && len(ids) < maxLiveIDs {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		s.pageError(w, r, p, errorf(http.StatusBadRequest, api.CodeInvalidRequest, "ids: want up to %d collector IDs, comma-separated", maxLiveIDs))
		return
	}
	e, ctx, done := s.startSSE(w, r)
	defer done()
	last := map[string]collectorEvent{}
	for {
		for _, id := range ids {
			c, err := s.st.Collector(ctx, id)
			if err != nil {
				continue // deleted, or a read failed: the next look tries again
			}
			ev := collectorEventOf(s.collectorView(c))
			if last[id] == ev {
				continue
			}
			last[id] = ev
			if e.send("collector", ev) != nil {
				return
			}
		}
		if !s.tick(ctx) {
			return
		}
	}
}

// jobEvent is the job page's live part: its state and the log text since
// the last event.
type jobEvent struct {
	State    string `json:"state"`
	Records  int64  `json:"records"`
	Refused  int64  `json:"refused"`
	Error    string `json:"error,omitempty"`
	Log      string `json:"log,omitempty"`
	Finished bool   `json:"finished"`
}

// jobEvents streams a job's logs as they arrive and its state; the last
// event, once the job finished, has finished: true.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request, p *access.Principal) {
	id := r.PathValue("id")
	if !api.ValidJobID(id) {
		s.pageError(w, r, p, errorf(http.StatusNotFound, api.CodeNotFound, "job %q not found", id))
		return
	}
	if _, err := s.jobs.Queue().Get(r.Context(), id); err != nil {
		s.pageError(w, r, p, jobError(err))
		return
	}
	e, ctx, done := s.startSSE(w, r)
	defer done()
	var cursor int64
	var prev jobEvent
	for first := true; ; first = false {
		j, err := s.jobs.Queue().Get(ctx, id)
		if err != nil {
			return
		}
		text, next, err := s.jobs.RecordStore().LogsAfter(ctx, id, cursor)
		if err != nil {
			return
		}
		cursor = next
		v := s.jobs.View(ctx, j)
		ev := jobEvent{State: v.State, Records: v.Records, Refused: v.RefusedRecords, Error: v.Error, Log: text,
			Finished: j.State != queue.StateQueued && j.State != queue.StateLeased && j.State != queue.StateRunning}
		cmp := ev
		cmp.Log = prev.Log
		if first || text != "" || cmp != prev {
			if e.send("job", ev) != nil {
				return
			}
		}
		prev = ev
		if ev.Finished || !s.tick(ctx) {
			return
		}
	}
}
