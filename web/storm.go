package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/undercloud/undercloud/inventory"
)

// The storm view's window of booted reports: the default, and the windows
// the page offers (the API takes any between the bounds).
const (
	DefaultStormWindow = 30 * time.Minute
	minStormWindow     = time.Minute
	maxStormWindow     = 24 * time.Hour
	// stormRefresh is how often the storm page reloads itself, in seconds:
	// a bring-up is watched, not read.
	stormRefresh = 2
)

// StormView is a bring-up at a glance: how many machines of a site (of all
// sites) are in each boot phase now, and the booted reports over a window.
type StormView struct {
	Site string    `json:"site,omitempty"` // empty: all sites
	At   time.Time `json:"at"`
	// Machines is how many machines the phases count.
	Machines int `json:"machines"`
	// Phases holds every phase, in boot order (inventory.Phases), even
	// those no machine is in.
	Phases []PhaseCount `json:"phases"`
	Booted BootedSeries `json:"booted"`
}

// PhaseCount is how many machines are in one boot phase.
type PhaseCount struct {
	Phase    string `json:"phase"`
	Machines int    `json:"machines"`
}

// BootedSeries is the count of booted reports per time bucket: bucket i
// starts at Start + i·StepSeconds, the last one holds At.
type BootedSeries struct {
	Start         time.Time `json:"start"`
	StepSeconds   int       `json:"step_seconds"`
	WindowSeconds int       `json:"window_seconds"` // as asked; the buckets cover at least this
	Counts        []int     `json:"counts"`
	Total         int       `json:"total"` // the sum of Counts
}

// stormQuery reads the storm view's parameters: site (empty or a served
// site) and window (a Go duration, DefaultStormWindow if absent).
func (s *server) stormQuery(c echo.Context) (site string, window time.Duration, err error) {
	site = c.QueryParam("site")
	if site != "" {
		if _, err := s.siteStatus(site); err != nil {
			return "", 0, err
		}
	}
	window = DefaultStormWindow
	if w := c.QueryParam("window"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil || d < minStormWindow || d > maxStormWindow {
			return "", 0, kindf(ErrBadRequest, "window %q: want a duration from %v to %v, like 30m", w, minStormWindow, maxStormWindow)
		}
		window = d
	}
	return site, window, nil
}

// stormView reads a site's (all sites') phases and booted series.
func (s *server) stormView(ctx context.Context, site string, window time.Duration) (StormView, error) {
	counts, err := s.DB.PhaseCounts(ctx, site)
	if err != nil {
		return StormView{}, err
	}
	series, err := s.DB.BootedSeries(ctx, site, window)
	if err != nil {
		return StormView{}, err
	}
	v := StormView{Site: site, At: s.now().UTC(), Booted: BootedSeries{Start: series.Start,
		StepSeconds: int(series.Step / time.Second), WindowSeconds: int(window / time.Second), Counts: series.Counts}}
	for _, p := range inventory.Phases() {
		v.Phases = append(v.Phases, PhaseCount{Phase: string(p), Machines: counts[p]})
		v.Machines += counts[p]
	}
	for _, n := range series.Counts {
		v.Booted.Total += n
	}
	return v, nil
}

func (s *server) apiStorm(c echo.Context) error {
	site, window, err := s.stormQuery(c)
	if err != nil {
		return err
	}
	v, err := s.stormView(c.Request().Context(), site, window)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// stormPage is the storm view: the phases as a row of bars, the booted
// reports as a chart, both drawn on the server as SVG, reloaded every
// stormRefresh seconds.
func (s *server) stormPage(c echo.Context) error {
	site, window, err := s.stormQuery(c)
	if err != nil {
		return err
	}
	v, err := s.stormView(c.Request().Context(), site, window)
	if err != nil {
		return err
	}
	d := stormData{StormView: v, Window: window.String(), WindowLabel: durLabel(window),
		Gap: inventory.DefaultBootGap, PhaseBars: phaseBars(v.Phases), Chart: bootedChart(v.Booted)}
	for _, st := range s.Sites.Status() {
		d.Sites = append(d.Sites, st.Site)
	}
	for _, w := range [...]time.Duration{5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour} {
		d.Windows = append(d.Windows, stormWindow{Value: w.String(), Label: durLabel(w), On: w == window})
	}
	return s.render(c, http.StatusOK, "storm", page{Title: "Storm", Nav: "storm", Reload: stormRefresh, Data: d})
}

// stormData is what the storm page's template gets.
type stormData struct {
	StormView
	Sites       []string
	Window      string // as the form sends it back
	WindowLabel string
	Gap         time.Duration // when a booting machine counts as stalled
	Windows     []stormWindow
	PhaseBars   []bar
	Chart       chart
}

// stormWindow is one choice of the window form.
type stormWindow struct {
	Value, Label string
	On           bool
}

// durLabel writes a round duration shortly: 15s, 5m, 1h, 24h.
func durLabel(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// bar is one rectangle of a chart, in the SVG's user units, with its
// label and tooltip.
type bar struct {
	X, Y, W, H float64
	CX         float64 // the middle of its width, for its labels
	Class      string
	Label      string // the count, drawn above it
	Name       string // drawn below it
	Title      string // the tooltip
}

// The phase bar row's size: a bar per phase with its count above and its
// name below.
const (
	phaseRowW, phaseRowH = 760.0, 150.0
	phaseBarTop          = 18.0  // room for the count
	phaseBarBottom       = 130.0 // the baseline; the name goes below
)

// phaseBars lays out one bar per phase, heights proportional to their
// counts (the largest fills the row).
func phaseBars(ps []PhaseCount) []bar {
	most := 1
	for _, p := range ps {
		most = max(most, p.Machines)
	}
	slot := phaseRowW / float64(max(len(ps), 1))
	out := make([]bar, len(ps))
	for i, p := range ps {
		h := (phaseBarBottom - phaseBarTop) * float64(p.Machines) / float64(most)
		out[i] = bar{X: float64(i)*slot + slot*0.15, CX: (float64(i) + 0.5) * slot, Y: phaseBarBottom - h, W: slot * 0.7, H: h,
			Class: "phase-" + p.Phase, Label: strconv.Itoa(p.Machines), Name: p.Phase,
			Title: fmt.Sprintf("%s: %d machine(s)", p.Phase, p.Machines)}
	}
	return out
}

// chart is the booted chart's drawing: a bar per bucket (booted reports in
// it) and a line of their running total, each scaled to the plot's
// height, with the labels of both scales and of the time axis.
type chart struct {
	W, H                            float64
	Left, Right, Top, Bottom        float64 // the plot area
	Bars                            []bar
	Line                            string // polyline points of the running total
	MaxBucket, Total                int
	StartLabel, EndLabel, StepLabel string
}

// The booted chart's size and margins.
const (
	chartW, chartH = 760.0, 220.0
	chartLeft      = 36.0
	chartRight     = chartW - 44.0
	chartTop       = 12.0
	chartBottom    = chartH - 24.0
)

// bootedChart draws a booted series.
func bootedChart(s BootedSeries) chart {
	ch := chart{W: chartW, H: chartH, Left: chartLeft, Right: chartRight, Top: chartTop, Bottom: chartBottom,
		Total: s.Total, StepLabel: durLabel(time.Duration(s.StepSeconds) * time.Second)}
	n := len(s.Counts)
	if n == 0 {
		return ch
	}
	step := time.Duration(s.StepSeconds) * time.Second
	ch.StartLabel = s.Start.UTC().Format("15:04:05")
	ch.EndLabel = s.Start.Add(time.Duration(n) * step).UTC().Format("15:04:05")
	for _, c := range s.Counts {
		ch.MaxBucket = max(ch.MaxBucket, c)
	}
	plotH, slot := chartBottom-chartTop, (chartRight-chartLeft)/float64(n)
	var pts []string
	run := 0
	for i, c := range s.Counts {
		x := chartLeft + float64(i)*slot
		if c > 0 {
			h := plotH * float64(c) / float64(ch.MaxBucket)
			at := s.Start.Add(time.Duration(i) * step).UTC().Format("15:04:05")
			ch.Bars = append(ch.Bars, bar{X: x, Y: chartBottom - h, W: max(slot-1, 1), H: h, Class: "booted",
				Title: fmt.Sprintf("%s: %d booted", at, c)})
		}
		run += c
		y := chartBottom
		if s.Total > 0 {
			y -= plotH * float64(run) / float64(s.Total)
		}
		pts = append(pts, svgNum(x)+","+svgNum(y), svgNum(x+slot)+","+svgNum(y))
	}
	ch.Line = strings.Join(pts, " ")
	return ch
}

// svgNum writes a coordinate with at most one decimal.
func svgNum(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
