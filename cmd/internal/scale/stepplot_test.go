//go:build scalebench

package scale_test

import (
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// drawStep draws scale-step.png in dir: four panels over time (offered and
// finished commands per second, replicas, ready backlog, p99), the step
// shaded.
func drawStep(dir string, secs []stepSecond, lead, hold time.Duration) error {
	panels := []struct {
		title, y string
		lines    map[string]func(stepSecond) float64
	}{
		{"Load", "commands/s", map[string]func(stepSecond) float64{
			"offered":  func(s stepSecond) float64 { return float64(s.Offered) },
			"finished": func(s stepSecond) float64 { return float64(s.Done) }}},
		{"Baristas", "running", map[string]func(stepSecond) float64{"replicas": func(s stepSecond) float64 { return float64(s.Replicas) }}},
		{"Backlog", "ready commands", map[string]func(stepSecond) float64{"ready": func(s stepSecond) float64 { return float64(s.Backlog) }}},
		{"Latency", "p99 (ms)", map[string]func(stepSecond) float64{"p99": func(s stepSecond) float64 { return float64(s.P99) / 1e6 }}},
	}
	colors := []color.Color{color.NRGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, color.NRGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}}
	plots := make([][]*plot.Plot, len(panels))
	for i, p := range panels {
		pl := plot.New()
		pl.Title.Text, pl.X.Label.Text, pl.Y.Label.Text = p.title, "seconds", p.y
		shade(pl, lead, hold, maxOf(secs, p.lines))
		k := 0
		for name, f := range p.lines {
			pts := make(plotter.XYs, len(secs))
			for j, s := range secs {
				pts[j] = plotter.XY{X: float64(j), Y: f(s)}
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			l.Color = colors[k%len(colors)]
			l.Width = vg.Points(1.5)
			pl.Add(l)
			pl.Legend.Add(name, l)
			k++
		}
		pl.Legend.Top = true
		plots[i] = []*plot.Plot{pl}
	}
	return save(dir+"/scale-step.png", plots)
}

// shade marks the high-rate step.
func shade(pl *plot.Plot, lead, hold time.Duration, top float64) {
	a, b := lead.Seconds(), (lead + hold).Seconds()
	poly, err := plotter.NewPolygon(plotter.XYs{{X: a, Y: 0}, {X: b, Y: 0}, {X: b, Y: top}, {X: a, Y: top}})
	if err == nil {
		poly.Color = color.NRGBA{R: 0xff, G: 0xcc, B: 0x66, A: 0x40}
		poly.LineStyle.Width = 0
		pl.Add(poly)
	}
}

func maxOf(secs []stepSecond, lines map[string]func(stepSecond) float64) float64 {
	m := 1.0
	for _, f := range lines {
		for _, s := range secs {
			m = max(m, f(s))
		}
	}
	return m
}

func save(file string, plots [][]*plot.Plot) error {
	img := vgimg.New(26*vg.Centimeter, 30*vg.Centimeter)
	dc := draw.New(img)
	t := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 3 * vg.Millimeter, PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return err
}
