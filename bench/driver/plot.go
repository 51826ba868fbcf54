package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"sort"
	"strings"
)

// series is one server's broadcast sweep.
type series struct {
	label   string
	variant bool // our server with other flags (label go+…)
	color   color.RGBA
	pts     []plotPoint
}

type plotPoint struct {
	x, y     float64 // offered deliveries/s, p99 ms
	complete bool
}

var (
	colGo    = color.RGBA{0, 90, 200, 255}
	colNode  = color.RGBA{30, 150, 50, 255}
	colAxis  = color.RGBA{0, 0, 0, 255}
	colGrid  = color.RGBA{225, 225, 225, 255}
	colLimit = color.RGBA{200, 40, 40, 255}
	colText  = color.RGBA{30, 30, 30, 255}
)

// sweepPlot draws p99 latency (log scale) against offered deliveries/s for
// each server's broadcast sweep, as a PNG, with the standard library only.
func sweepPlot(res *Run) ([]byte, error) {
	var all []series
	clients, senders := 0, 0
	others := []color.RGBA{{220, 120, 0, 255}, {140, 60, 170, 255}, {200, 40, 160, 255}, {0, 160, 170, 255}, {120, 120, 120, 255}}
	for _, sc := range res.Scenarios {
		if sc.Name != "sweep" {
			continue
		}
		se := series{label: plotLabel(sc.Server), variant: strings.Contains(sc.Server, "+")}
		switch {
		case sc.Server == "go":
			se.color = colGo
		case sc.Server == "node":
			se.color = colNode
		default:
			se.color = others[0]
			others = append(others[1:], others[0])
		}
		clients = sc.Clients
		for _, p := range sc.Points {
			senders = p.Senders
			se.pts = append(se.pts, plotPoint{p.OfferedPerSec, math.Max(p.P99Ms, 0.01), p.Complete})
		}
		// A search runs its points out of order; the line goes left to right.
		sort.SliceStable(se.pts, func(i, j int) bool { return se.pts[i].x < se.pts[j].x })
		all = append(all, se)
	}

	const W, H = 960, 680
	const left, right, top, bottom = 110, 40, 70, 180
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)

	maxX, minY, maxY := 0.0, math.Inf(1), 0.0
	for _, s := range all {
		for _, p := range s.pts {
			maxX = math.Max(maxX, p.x)
			minY = math.Min(minY, p.y)
			maxY = math.Max(maxY, p.y)
		}
	}
	if maxX == 0 {
		maxX, minY, maxY = 1, 1, 1000
	}
	xStep := niceStep(maxX / 5)
	xMax := math.Ceil(maxX*1.05/xStep) * xStep
	yLo := math.Pow(10, math.Floor(math.Log10(math.Min(minY, 10))))
	yHi := math.Pow(10, math.Ceil(math.Log10(math.Max(maxY*1.2, 200))))
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	px := func(x float64) int { return left + int(math.Round(x/xMax*pw)) }
	py := func(y float64) int {
		f := (math.Log10(y) - math.Log10(yLo)) / (math.Log10(yHi) - math.Log10(yLo))
		return top + int(math.Round((1-f)*ph))
	}

	// Grid and ticks.
	for x := 0.0; x <= xMax+xStep/2; x += xStep {
		X := px(x)
		vline(img, X, top, H-bottom, colGrid)
		label := shortNumber(x)
		drawText(img, X-textWidth(label, 2)/2, H-bottom+10, label, 2, colText)
	}
	for y := yLo; y <= yHi*1.0001; y *= 10 {
		Y := py(y)
		hline(img, left, W-right, Y, colGrid)
		label := shortNumber(y)
		drawText(img, left-12-textWidth(label, 2), Y-7, label, 2, colText)
	}
	hline(img, left, W-right, H-bottom, colAxis)
	vline(img, left, top, H-bottom, colAxis)

	// The latency bound.
	if p99Limit > yLo && p99Limit < yHi {
		Y := py(p99Limit)
		for X := left; X < W-right; X += 12 {
			hline(img, X, min(X+6, W-right), Y, colLimit)
			hline(img, X, min(X+6, W-right), Y+1, colLimit)
		}
		drawText(img, W-right-textWidth("p99 = 100 ms", 2)-4, Y-18, "p99 = 100 ms", 2, colLimit)
	}

	for _, s := range all {
		for i := 1; i < len(s.pts); i++ {
			a, b := s.pts[i-1], s.pts[i]
			line(img, px(a.x), py(a.y), px(b.x), py(b.y), 3, s.color)
		}
		for _, p := range s.pts {
			if p.complete {
				square(img, px(p.x), py(p.y), 5, s.color)
			} else {
				cross(img, px(p.x), py(p.y), 7, s.color)
			}
		}
	}

	title := "Broadcast sweep: p99 latency vs deliveries/s"
	if clients > 0 {
		title += fmt.Sprintf(" (%d clients, %d senders)", clients, senders)
	}
	drawText(img, (W-textWidth(title, 2))/2, 20, title, 2, colText)
	xl := "deliveries per second (messages/s * clients)"
	drawText(img, left+(int(pw)-textWidth(xl, 2))/2, H-bottom+42, xl, 2, colText)
	yl := "p99 latency (ms, log scale)"
	drawTextVertical(img, 24, top+(int(ph)+textWidth(yl, 2))/2, yl, 2, colText)

	// Legend, under the x axis label: the servers as users run them and the
	// marker for losses in the left column, the variants (other flags) in the
	// right one, so that the five series of a full run fit.
	var col [2]int
	entry := func(c int, draw func(lx, ly int)) {
		draw(left+c*470, H-bottom+78+col[c]*24)
		col[c]++
	}
	for _, s := range all {
		c := 0
		if s.variant {
			c = 1
		}
		entry(c, func(lx, ly int) {
			line(img, lx, ly+7, lx+36, ly+7, 3, s.color)
			square(img, lx+18, ly+7, 5, s.color)
			drawText(img, lx+48, ly, s.label, 2, colText)
		})
	}
	entry(0, func(lx, ly int) {
		cross(img, lx+18, ly+7, 7, colText)
		drawText(img, lx+48, ly, "lost, duplicated or reordered", 2, colText)
	})
	if len(all) == 0 {
		drawText(img, left+40, top+int(ph)/2, "no sweep data", 3, colLimit)
	}
	if res.Quick {
		drawText(img, W-right-textWidth("quick run", 2)-4, top+8, "quick run", 2, colLimit)
	}

	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// shortNumber writes 250000 as 250K, 1500000 as 1.5M, 0.1 as 0.1.
func shortNumber(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "K"
	case v >= 1:
		return fmt.Sprintf("%.0f", v)
	default:
		return trimZero(fmt.Sprintf("%.2f", v))
	}
}

func trimZero(s string) string {
	for len(s) > 1 && s[len(s)-1] == '0' && bytes.ContainsRune([]byte(s), '.') {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a segment of the given thickness.
func line(img *image.RGBA, x0, y0, x1, y1, width int, c color.Color) {
	n := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= n; i++ {
		x := x0 + (x1-x0)*i/n
		y := y0 + (y1-y0)*i/n
		for dy := -width / 2; dy <= width/2; dy++ {
			for dx := -width / 2; dx <= width/2; dx++ {
				img.Set(x+dx, y+dy, c)
			}
		}
	}
}

func square(img *image.RGBA, x, y, r int, c color.Color) {
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			img.Set(x+dx, y+dy, c)
		}
	}
}

func cross(img *image.RGBA, x, y, r int, c color.Color) {
	line(img, x-r, y-r, x+r, y+r, 3, c)
	line(img, x-r, y+r, x+r, y-r, 3, c)
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
