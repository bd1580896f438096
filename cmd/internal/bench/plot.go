package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The pictures, made with gonum.org/v1/plot, each as PNG:
//
//	latency-over-time.png   every command (a sample of at most 20 000) by when it was due, with the
//	                        per-second p50, p99 and max on a log scale; the warmup is shaded
//	throughput-over-time.png sent, accepted and results per second
//	latency-histogram.png   how many commands took how long, on log-spaced bins, with p50 and p99 marked
//	knee.png                --knee: p50 and p99 against the offered rate, the limit and the knee

var (
	colP50     = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colP99     = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colMax     = color.NRGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	colSample  = color.NRGBA{R: 0x99, G: 0x99, B: 0x99, A: 0x60}
	colWarmup  = color.NRGBA{R: 0xff, G: 0xcc, B: 0x66, A: 0x50}
	colAccept  = color.NRGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colSent    = color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colBars    = color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xa0}
	pictureW   = 26 * vg.Centimeter
	pictureH   = 14 * vg.Centimeter
	latencyMin = 0.05 // ms: the lowest a log axis shows
)

// writePictures draws the pictures of r into dir and returns their paths.
func writePictures(dir string, title string, r *PhaseReport, knee *KneeReport) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		path := filepath.Join(dir, name)
		if err := p.Save(pictureW, pictureH, path); err != nil {
			return fmt.Errorf("draw %s: %w", name, err)
		}
		files = append(files, path)
		return nil
	}
	if r != nil && r.Latency.Count > 0 {
		what := "end-to-end latency (HTTP submit → result on MQTT)"
		if r.CashierOnly {
			what = "202 latency (cashier alone)"
		}
		p, err := latencyOverTime(title+"\n"+what+", measured from the scheduled send", r)
		if err != nil {
			return files, err
		}
		if err := save(p, "latency-over-time.png"); err != nil {
			return files, err
		}
		if p, err = throughputOverTime(title+"\nper second", r); err != nil {
			return files, err
		}
		if err := save(p, "throughput-over-time.png"); err != nil {
			return files, err
		}
		if r.hist != nil {
			if p, err = latencyHistogram(title+"\n"+what, r); err != nil {
				return files, err
			}
			if err := save(p, "latency-histogram.png"); err != nil {
				return files, err
			}
		}
	}
	if knee != nil && len(knee.Steps) > 0 {
		p, err := kneePlot(title, knee)
		if err != nil {
			return files, err
		}
		if err := save(p, "knee.png"); err != nil {
			return files, err
		}
	}
	return files, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Legend.Left = true
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 0xdd}
	g.Horizontal.Color = color.Gray{Y: 0xdd}
	p.Add(g)
	return p
}

// logMS puts a log scale on axis a, labelled 1-2-5 in milliseconds.
func logMS(a *plot.Axis) {
	a.Scale = plot.LogScale{}
	a.Tick.Marker = plot.TickerFunc(ticks125)
}

// ticks125 marks 1, 2 and 5 times each power of ten in [min, max].
func ticks125(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < min*0.999 || v > max*1.001 {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	if len(ts) < 2 { // a narrow range: fall back to plain ticks
		return plot.DefaultTicks{}.Ticks(min, max)
	}
	return ts
}

func clampMS(v float64) float64 { return math.Max(v, latencyMin) }

func latencyOverTime(title string, r *PhaseReport) (*plot.Plot, error) {
	p := newPlot(title, "seconds since the start (when each command was due)", "latency (ms, log scale)")
	logMS(&p.Y)
	bottom := latencyMin
	if r.hist != nil && r.hist.TotalCount() > 0 {
		bottom = clampMS(float64(r.hist.Min()) / 1000 / 2)
	}
	p.Y.Min = bottom
	if r.warmupSeconds > 0 {
		top := clampMS(r.Latency.Max) * 4
		if w, err := plotter.NewPolygon(plotter.XYs{{X: 0, Y: bottom}, {X: r.warmupSeconds, Y: bottom}, {X: r.warmupSeconds, Y: top}, {X: 0, Y: top}}); err == nil {
			w.Color = colWarmup
			w.LineStyle.Width = 0
			p.Add(w)
			p.Legend.Add("warmup (not measured)", w)
		}
	}
	if len(r.samples) > 0 {
		pts := make(plotter.XYs, len(r.samples))
		for i, s := range r.samples {
			pts[i] = plotter.XY{X: s.T, Y: clampMS(s.Latency)}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: colSample, Radius: vg.Points(1.2), Shape: draw.CircleGlyph{}}
		p.Add(sc)
		p.Legend.Add(fmt.Sprintf("one command (%d shown of %d)", len(r.samples), r.Latency.Count), sc)
	}
	for _, s := range []series[Second]{
		{"max per second", colMax, func(s Second) float64 { return s.Max }},
		{"p99 per second", colP99, func(s Second) float64 { return s.P99 }},
		{"p50 per second", colP50, func(s Second) float64 { return s.P50 }},
	} {
		var pts plotter.XYs
		for _, sec := range r.Timeline {
			if sec.Count > 0 {
				pts = append(pts, plotter.XY{X: float64(sec.T) + 0.5, Y: clampMS(s.y(sec))})
			}
		}
		if len(pts) == 0 {
			continue
		}
		if _, err := addLine(p, s.name, s.c, vg.Points(1.8), pts); err != nil {
			return nil, err
		}
	}
	p.Y.Max = clampMS(r.Latency.Max) * 4 // room for the legend above the data
	return p, nil
}

func throughputOverTime(title string, r *PhaseReport) (*plot.Plot, error) {
	p := newPlot(title, "seconds since the start", "commands per second")
	lines := []series[Second]{
		{"sent", colSent, func(s Second) float64 { return float64(s.Sent) }},
		{"accepted (202)", colAccept, func(s Second) float64 { return float64(s.Accepted) }},
	}
	if !r.CashierOnly {
		lines = append(lines, series[Second]{"results", colP50, func(s Second) float64 { return float64(s.Results) }})
	}
	top := 1.0
	for i, s := range lines {
		pts := make(plotter.XYs, len(r.Timeline))
		for j, sec := range r.Timeline {
			pts[j] = plotter.XY{X: float64(sec.T) + 0.5, Y: s.y(sec)}
			top = math.Max(top, pts[j].Y)
		}
		if len(pts) == 0 {
			continue
		}
		l, err := addLine(p, s.name, s.c, vg.Points(1.8), pts)
		if err != nil {
			return nil, err
		}
		l.Dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}[i%3]
	}
	p.Y.Min = 0
	p.Y.Max = top * 1.3 // room for the legend
	return p, nil
}

// histBinsPerDecade is the resolution of the histogram picture.
const histBinsPerDecade = 20

func latencyHistogram(title string, r *PhaseReport) (*plot.Plot, error) {
	p := newPlot(title, "latency (ms, log scale)", "commands")
	logMS(&p.X)
	bins := logBins(r.hist)
	if len(bins) == 0 {
		return p, nil
	}
	h := &plotter.Histogram{Bins: bins, FillColor: colBars}
	h.LineStyle.Width = vg.Points(0.3)
	h.LineStyle.Color = color.White
	p.Add(h)
	top := 0.0
	for _, b := range bins {
		top = math.Max(top, b.Weight)
	}
	for _, m := range []struct {
		name string
		v    float64
		c    color.Color
	}{
		{fmt.Sprintf("p50 %s", fmtMS(r.Latency.P50)), r.Latency.P50, colP50},
		{fmt.Sprintf("p99 %s", fmtMS(r.Latency.P99)), r.Latency.P99, colP99},
		{fmt.Sprintf("max %s", fmtMS(r.Latency.Max)), r.Latency.Max, colMax},
	} {
		l, err := addLine(p, m.name, m.c, vg.Points(1.5), plotter.XYs{{X: clampMS(m.v), Y: 0}, {X: clampMS(m.v), Y: top * 1.05}})
		if err != nil {
			return nil, err
		}
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	p.Legend.Left = false
	p.Y.Min = 0
	p.Y.Max = top * 1.3 // room for the legend
	return p, nil
}

// logBins spreads the histogram's counts over log-spaced bins (in ms).
func logBins(h *hdrhistogram.Histogram) []plotter.HistogramBin {
	if h.TotalCount() == 0 {
		return nil
	}
	lo := math.Floor(math.Log10(clampMS(float64(h.Min())/1000)) * histBinsPerDecade)
	hi := math.Ceil(math.Log10(clampMS(float64(h.Max())/1000))*histBinsPerDecade) + 1
	n := int(hi - lo)
	if n < 1 || n > 10*histBinsPerDecade {
		return nil
	}
	bins := make([]plotter.HistogramBin, n)
	for i := range bins {
		bins[i].Min = math.Pow(10, (lo+float64(i))/histBinsPerDecade)
		bins[i].Max = math.Pow(10, (lo+float64(i)+1)/histBinsPerDecade)
	}
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		mid := clampMS(float64(b.From+b.To) / 2 / 1000)
		i := int(math.Floor(math.Log10(mid)*histBinsPerDecade) - lo)
		i = max(0, min(i, n-1))
		bins[i].Weight += float64(b.Count)
	}
	return bins
}

// kneePlot draws p50 and p99 of each knee step against its offered rate,
// with the p99 limit and the knee marked.
func kneePlot(title string, k *KneeReport) (*plot.Plot, error) {
	p := newPlot(title+"\nknee: latency against the offered rate (each step "+strconv.FormatFloat(k.StepS, 'g', -1, 64)+" s)",
		"offered rate (commands per second)", "latency (ms, log scale)")
	logMS(&p.Y)
	if err := kneeSteps(p, k); err != nil {
		return nil, err
	}
	bottom := kneeBottom(k)
	p.Y.Min = bottom
	first, last := k.Steps[0].OfferedRate, k.Steps[len(k.Steps)-1].OfferedRate
	limit, err := addLine(p, fmt.Sprintf("p99 limit %s", fmtMS(k.P99LimitMS)), colMax, plotter.DefaultLineStyle.Width,
		plotter.XYs{{X: first, Y: k.P99LimitMS}, {X: last, Y: k.P99LimitMS}})
	if err != nil {
		return nil, err
	}
	limit.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	if ks := k.KneeStep(); ks != nil {
		top := k.P99LimitMS * 4
		for _, r := range k.Steps {
			top = math.Max(top, clampMS(r.Latency.P99)*1.5)
		}
		if _, err := addLine(p, fmt.Sprintf("knee %.0f/s", ks.OfferedRate), colAccept, vg.Points(1.5),
			plotter.XYs{{X: ks.OfferedRate, Y: bottom}, {X: ks.OfferedRate, Y: top}}); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// kneeSteps draws p99 and p50 of the steps that completed anything, as
// lines with a point per step.
func kneeSteps(p *plot.Plot, k *KneeReport) error {
	for _, s := range []series[*PhaseReport]{
		{"p99", colP99, func(r *PhaseReport) float64 { return r.Latency.P99 }},
		{"p50", colP50, func(r *PhaseReport) float64 { return r.Latency.P50 }},
	} {
		var pts plotter.XYs
		for _, r := range k.Steps {
			if r.Latency.Count > 0 {
				pts = append(pts, plotter.XY{X: r.OfferedRate, Y: clampMS(s.y(r))})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width = s.c, vg.Points(1.8)
		sc.GlyphStyle = draw.GlyphStyle{Color: s.c, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	return nil
}

// kneeBottom is the foot of the knee's latency axis: half the lowest p50.
func kneeBottom(k *KneeReport) float64 {
	bottom := math.Inf(1)
	for _, r := range k.Steps {
		if r.Latency.Count > 0 {
			bottom = math.Min(bottom, clampMS(r.Latency.P50/2))
		}
	}
	if math.IsInf(bottom, 1) {
		return latencyMin
	}
	return bottom
}

// series is one line of a picture: its name in the legend, its colour, and
// its value at each T (a second of a phase, a knee step).
type series[T any] struct {
	name string
	c    color.Color
	y    func(T) float64
}

// addLine draws a line through pts on p, names it in the legend, and
// returns it for further styling.
func addLine(p *plot.Plot, name string, c color.Color, width vg.Length, pts plotter.XYs) (*plotter.Line, error) {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	l.Color, l.Width = c, width
	p.Add(l)
	p.Legend.Add(name, l)
	return l, nil
}
