package metrics

import (
	"math"
	"math/bits"

	sm "github.com/rdre-studio/studio/shared/metrics"
)

// kahan is a Neumaier-compensated float64 sum: its error stays at a few ulps of the result however many
// terms go in, so sums over tens of millions of pixels keep the 1e-9 agreement the metrics promise.
type kahan struct{ s, c float64 }

func (k *kahan) add(x float64) {
	t := k.s + x
	if math.Abs(k.s) >= math.Abs(x) {
		k.c += (k.s - t) + x
	} else {
		k.c += (x - t) + k.s
	}
	k.s = t
}

func (k *kahan) value() float64 { return k.s + k.c }

// u128 is an unsigned 128-bit accumulator for exact integer sums of products.
type u128 struct{ hi, lo uint64 }

func (u *u128) addMul(a, b uint64) {
	hi, lo := bits.Mul64(a, b)
	var carry uint64
	u.lo, carry = bits.Add64(u.lo, lo, 0)
	u.hi, _ = bits.Add64(u.hi, hi, carry)
}

func (u u128) float() float64 { return float64(u.hi)*0x1p64 + float64(u.lo) }

// sweep consumes the threshold groups from the highest score down and accumulates every metric at once.
// P and N (positives, negatives) and the region counts of its tracks are known before the sweep starts.
//
// PRO is accumulated on tracks that share the FPR axis: the main track (every 8-connected region), with
// the per-image table one track per region size, and with saturation regions (MVTec LOCO) the sPRO track.
// Every track integrates up to each FPR limit of the evaluation in the same sweep: the area grows from the
// lowest limit to the highest, and when a segment crosses a limit each track's value at that limit is the
// area so far plus the segment cut at the limit.
type sweep struct {
	P, N     int64
	tp, fp   int64
	distinct int64
	lastThr  float64
	// fpFlushed is the FP count up to which the run sums (AUROC, PRO areas) are accumulated: groups with
	// no positives and no curve point are only counted, and the run they form is added in one product.
	fpFlushed int64

	aucTwice u128  // sum of dFP * (TP_prev + TP): twice the ROC area times P*N, exact
	apSum    kahan // sum of dTP * precision
	f1Num    int64 // best F1 = f1Num / f1Den (2TP / (TP + FP + P))
	f1Den    int64
	f1Thr    float64
	hasF1    bool

	// lims are the FPR limits, ascending; fpLims[i] is the largest FP count whose FPR (as float64 FP/N) is
	// <= lims[i]; next is the first limit not yet passed; primary is the index of the limit of the PRO curve
	// and of aupro().
	lims    []float64
	fpLims  []int64
	next    int
	primary int
	pro     bool // some track has regions and normal pixels exist
	tr      []track
	// sizeBase and sproIdx are the track indices of the size tracks and of the sPRO track, -1 when absent.
	sizeBase, sproIdx int
	geo               *geometry
	cov               []int64 // covered pixels per saturation region, for sPRO
	d                 []kahan // the current group's PRO increments per track
	dAny              bool

	// The probe takes TP, FP and each track's sum at a threshold (score >= probeT counts), without
	// changing how the sums are accumulated.
	probeOn, probed bool
	probeT          float64
	probeTP         int64
	probeFP         int64

	curves            bool
	proCurveOn        bool // the PRO curve still takes points (main track on, primary limit not passed)
	roc, pr, proCurve curveBuilder
}

// track is one PRO curve: R regions, sum = PRO times R at the current threshold.
type track struct {
	R    int64
	sum  kahan
	s0   float64 // sum before the current step
	area kahan   // sum of (S + S_prev) * dFP: the trapezoid area times 2*N*R, up to the current point
	val  []float64
	// atProbe is the sum at the probe threshold.
	atProbe float64
}

// trackCounts are the region counts of the tracks of one sweep.
type trackCounts struct {
	R     int64
	sizes [3]int64
	parts int64
}

// sweepConfig is what every pixel sweep of an evaluation shares.
type sweepConfig struct {
	lims    []float64
	primary int
	sizes   bool // size tracks (overall sweep only)
	probe   *float64
	geo     *geometry
}

func newSweep(P, N int64, tc trackCounts, cfg sweepConfig, curves bool) *sweep {
	s := &sweep{P: P, N: N, curves: curves, lims: cfg.lims, primary: cfg.primary, sizeBase: -1, sproIdx: -1, geo: cfg.geo}
	s.tr = append(s.tr, track{R: tc.R})
	if cfg.sizes && curves {
		s.sizeBase = len(s.tr)
		for _, r := range tc.sizes {
			s.tr = append(s.tr, track{R: r})
		}
	}
	if cfg.geo != nil && cfg.geo.partStart != nil {
		s.sproIdx = len(s.tr)
		s.tr = append(s.tr, track{R: tc.parts})
		s.cov = make([]int64, len(cfg.geo.sat))
	}
	s.d = make([]kahan, len(s.tr))
	for i := range s.tr {
		s.tr[i].val = make([]float64, len(s.lims))
		if s.tr[i].R > 0 && N > 0 {
			s.pro = true
		}
	}
	if s.pro {
		s.fpLims = make([]int64, len(s.lims))
		for i, lim := range s.lims {
			// The same test as float64(fp)/float64(N) <= lim, decided once: start from the rounded product
			// and step to the exact boundary.
			f := int64(lim * float64(N))
			for f > 0 && float64(f)/float64(N) > lim {
				f--
			}
			for f < N && float64(f+1)/float64(N) <= lim {
				f++
			}
			s.fpLims[i] = f
		}
	}
	if cfg.probe != nil {
		s.probeOn, s.probeT = true, *cfg.probe
	}
	s.proCurveOn = curves && tc.R > 0 && N > 0
	if curves {
		step2 := 2 / float64(sm.MaxCurvePoints-4)
		step1 := 1 / float64(sm.MaxCurvePoints-4)
		s.roc = newCurveBuilder(float64(N)*step2, float64(P)*step2)
		s.pr = newCurveBuilder(float64(P)*step1, math.Inf(1))
		s.pr.nextA = 0
		lim := 1.0
		if len(s.lims) > 0 {
			lim = s.lims[s.primary]
		}
		s.proCurve = newCurveBuilder(lim*float64(N)*step2, float64(tc.R)*step2)
		if N > 0 && P > 0 {
			s.roc.keep(0, 0, 0, 0, 0, false)
		}
		if s.proCurveOn {
			s.proCurve.keep(0, 0, 0, 0, 0, false)
		}
	}
	return s
}

// limitOpen reports whether a PRO limit remains to integrate to.
func (s *sweep) limitOpen() bool { return s.pro && s.next < len(s.fpLims) }

// hit enters c defect pixels of cell (their scores equal the current group's) into the group's PRO
// increments. The pixels of a group enter by ascending cell, so that the increments are one function of the
// counts whatever the order in which the pixels were sorted.
func (s *sweep) hit(cell uint32, c int64) {
	g := s.geo
	r := cell
	if g.cellRegion != nil {
		r = uint32(g.cellRegion[cell])
	}
	v := float64(c) * g.inv[r]
	s.d[0].add(v)
	if s.sizeBase >= 0 {
		s.d[s.sizeBase+int(g.size[r])].add(v)
	}
	if s.sproIdx >= 0 {
		for _, p := range g.partIdx[g.partStart[cell]:g.partStart[cell+1]] {
			old := s.cov[p]
			nw := old + c
			s.cov[p] = nw
			if sat := g.sat[p]; old < sat {
				s.d[s.sproIdx].add(float64(min(nw, sat)-old) / float64(sat))
			}
		}
	}
	s.dAny = true
}

// takeProbe records the state before the group about to enter (at FP count fp), the first below probeT.
func (s *sweep) takeProbe(fp int64) {
	s.probed = true
	s.probeTP, s.probeFP = s.tp, fp
	for i := range s.tr {
		s.tr[i].atProbe = s.tr[i].sum.value()
	}
}

// step enters all samples whose score equals thr: dtp positives and dfp negatives; the PRO increments of
// the positives were entered by hit.
//
// Most groups hold only negatives: over such a run TP and PRO stay constant, the AUROC and PRO-area terms
// are TP or PRO times the FP growth, and F1 only falls (so its maximum is always at a group with
// positives). Those groups are therefore only counted here and the run is added at the next full step.
func (s *sweep) step(thr float64, dtp, dfp int64) {
	s.distinct++
	if s.probeOn && !s.probed && thr < s.probeT {
		s.takeProbe(s.fp)
	}
	fpBefore := s.fp
	s.fp += dfp
	prevThr := s.lastThr
	s.lastThr = thr
	if dtp == 0 && (!s.limitOpen() || s.fp <= s.fpLims[s.next]) &&
		(!s.curves || (float64(s.fp) < s.roc.nextA && (!s.proCurveOn || float64(s.fp) < s.proCurve.nextA))) {
		return
	}
	for i := range s.tr {
		s.tr[i].s0 = s.tr[i].sum.value()
	}
	s.flush(fpBefore)
	prevTP := s.tp
	s.tp += dtp
	if dfp > 0 {
		s.aucTwice.addMul(uint64(dfp), uint64(prevTP+s.tp))
	}
	s.fpFlushed = s.fp
	if dtp > 0 {
		s.apSum.add(float64(dtp) * float64(s.tp) / float64(s.tp+s.fp))
		num, den := 2*s.tp, s.tp+s.fp+s.P
		// >= so that ties move to the lower threshold, which comes later in the sweep.
		if !s.hasF1 || cmpFrac(num, den, s.f1Num, s.f1Den) >= 0 {
			s.f1Num, s.f1Den, s.f1Thr, s.hasF1 = num, den, thr, true
		}
		if s.curves {
			if a := float64(s.tp); a >= s.pr.nextA {
				s.pr.keep(a, 0, a/float64(s.P), float64(s.tp)/float64(s.tp+s.fp), thr, true)
			}
		}
	}
	if s.curves && s.N > 0 && s.P > 0 {
		if a, b := float64(s.fp), float64(s.tp); a >= s.roc.nextA || b >= s.roc.nextB {
			s.roc.keep(a, b, a/float64(s.N), b/float64(s.P), thr, true)
		}
	}
	if s.dAny {
		for i := range s.tr {
			if d := s.d[i]; d.s != 0 || d.c != 0 {
				s.tr[i].sum.add(d.s)
				s.tr[i].sum.add(d.c)
			}
			s.d[i] = kahan{}
		}
		s.dAny = false
	}
	if !s.limitOpen() {
		return
	}
	N := float64(s.N)
	// Limits this segment passes: each track's value there is the area so far plus the segment cut at the
	// limit.
	for s.next < len(s.fpLims) && s.fp > s.fpLims[s.next] {
		lim := s.lims[s.next]
		px, x := float64(fpBefore)/N, float64(s.fp)/N
		for i := range s.tr {
			t := &s.tr[i]
			if t.R == 0 {
				continue
			}
			R := float64(t.R)
			py, y := t.s0/R, t.sum.value()/R
			var corr float64
			yi := py
			if px != lim {
				yi = py + (y-py)*(lim-px)/(x-px)
				corr = 0.5 * (yi + py) * (lim - px)
			}
			t.val[s.next] = math.Min((t.area.value()/(2*N*R)+corr)/lim, 1)
			if i == 0 && s.next == s.primary && s.proCurveOn {
				// The last point inside the limit, then the cut.
				S0 := t.s0
				if s.proCurve.keptA != float64(fpBefore) || s.proCurve.keptB != S0 {
					s.proCurve.keep(float64(fpBefore), S0, px, py, prevThr, fpBefore > 0 || S0 > 0)
				}
				if px != lim {
					s.proCurve.keep(0, 0, lim, yi, 0, false)
				}
				s.proCurveOn = false
			}
		}
		s.next++
	}
	if s.next == len(s.fpLims) {
		return
	}
	if dfp > 0 {
		for i := range s.tr {
			if t := &s.tr[i]; t.R > 0 {
				t.area.add((t.sum.value() + t.s0) * float64(dfp))
			}
		}
	}
	if s.proCurveOn {
		S := s.tr[0].sum.value()
		if float64(s.fp) >= s.proCurve.nextA || S >= s.proCurve.nextB {
			s.proCurve.keep(float64(s.fp), S, float64(s.fp)/N, S/float64(s.tr[0].R), thr, true)
		}
	}
}

// stepPro is step with the PRO increment of the main track given (the accumulator's binned estimate).
func (s *sweep) stepPro(thr float64, dtp, dfp int64, dpro kahan) {
	if dpro.s != 0 || dpro.c != 0 {
		s.d[0] = dpro
		s.dAny = true
	}
	s.step(thr, dtp, dfp)
}

// quietUntil returns the largest FP count up to which groups of negatives only need no full step: they
// neither pass a PRO limit nor reach the next curve point.
func (s *sweep) quietUntil() int64 {
	q := int64(math.MaxInt64)
	if s.limitOpen() {
		q = s.fpLims[s.next]
	}
	if s.curves {
		next := s.roc.nextA
		if s.proCurveOn {
			next = min(next, s.proCurve.nextA)
		}
		if next < float64(q) {
			q = int64(math.Ceil(next)) - 1 // fp < next, for integer fp
		}
	}
	return q
}

// quiet enters groups of negatives only, all below quietUntil: dfp negatives in groups distinct scores, the
// lowest at thr.
func (s *sweep) quiet(dfp, groups int64, thr float64) {
	s.fp += dfp
	s.distinct += groups
	s.lastThr = thr
}

// flush adds the run of negative-only groups from fpFlushed to fp, over which TP and the PRO sums were
// constant.
func (s *sweep) flush(fp int64) {
	run := fp - s.fpFlushed
	if run <= 0 {
		return
	}
	s.aucTwice.addMul(uint64(run), uint64(2*s.tp))
	if s.limitOpen() {
		for i := range s.tr {
			if t := &s.tr[i]; t.R > 0 {
				t.area.add(2 * t.sum.value() * float64(run))
			}
		}
	}
	s.fpFlushed = fp
}

// finish closes the sweep: the last run, the limits never passed (1, or a limit at the last FPR), the
// probe if every score is at or above it, and the curve end points that thinning may have skipped.
func (s *sweep) finish() {
	s.flush(s.fp)
	if s.probeOn && !s.probed {
		s.takeProbe(s.fp)
	}
	if s.limitOpen() {
		N := float64(s.N)
		for ; s.next < len(s.fpLims); s.next++ {
			for i := range s.tr {
				if t := &s.tr[i]; t.R > 0 {
					t.val[s.next] = math.Min(t.area.value()/(2*N*float64(t.R))/s.lims[s.next], 1)
				}
			}
		}
	}
	if !s.curves {
		return
	}
	if s.N > 0 && s.P > 0 && (s.roc.keptA != float64(s.fp) || s.roc.keptB != float64(s.tp)) {
		s.roc.keep(float64(s.fp), float64(s.tp), 1, 1, s.lastThr, true)
	}
	if s.P > 0 && s.pr.keptA != float64(s.tp) {
		s.pr.keep(float64(s.tp), 0, 1, float64(s.tp)/float64(s.tp+s.fp), s.lastThr, true)
	}
	if s.proCurveOn && (s.proCurve.keptA != float64(s.fp) || s.proCurve.keptB != s.tr[0].sum.value()) {
		// The limit was never passed (limit 1): end on the last point.
		S := s.tr[0].sum.value()
		s.proCurve.keep(float64(s.fp), S, float64(s.fp)/float64(s.N), S/float64(s.tr[0].R), s.lastThr, true)
	}
	s.curves = false
}

// cmpFrac compares a/b with c/d for positive b and d, exactly.
func cmpFrac(a, b, c, d int64) int {
	h1, l1 := bits.Mul64(uint64(a), uint64(d))
	h2, l2 := bits.Mul64(uint64(c), uint64(b))
	switch {
	case h1 != h2:
		if h1 < h2 {
			return -1
		}
		return 1
	case l1 != l2:
		if l1 < l2 {
			return -1
		}
		return 1
	}
	return 0
}

func ptr(v float64) *float64 { return &v }

func (s *sweep) auroc() *float64 {
	if s.P == 0 || s.N == 0 {
		return nil
	}
	return ptr(s.aucTwice.float() / (2 * float64(s.P) * float64(s.N)))
}

func (s *sweep) ap() *float64 {
	if s.P == 0 {
		return nil
	}
	return ptr(s.apSum.value() / float64(s.P))
}

func (s *sweep) f1() (f1, thr *float64) {
	if s.P == 0 || !s.hasF1 {
		return nil, nil
	}
	return ptr(float64(s.f1Num) / float64(s.f1Den)), ptr(s.f1Thr)
}

func (s *sweep) aupro() *float64 { return s.trackAU(0, s.primary) }

// trackAU is the area under track t's PRO curve up to limit i, normalised; nil when undefined.
func (s *sweep) trackAU(t, i int) *float64 {
	if t < 0 || t >= len(s.tr) || s.tr[t].R == 0 || s.N == 0 {
		return nil
	}
	return ptr(s.tr[t].val[i])
}

// trackByLimit is track t's AU by limit, keyed by the limit's shortest decimal form.
func (s *sweep) trackByLimit(t int) sm.ByLimit {
	out := sm.ByLimit{}
	for i, l := range s.lims {
		out[limitName(l)] = s.trackAU(t, i)
	}
	return out
}

// atProbe is track t's mean covered fraction at the probe threshold; nil when the track has no region.
func (s *sweep) atProbe(t int) *float64 {
	if t < 0 || t >= len(s.tr) || s.tr[t].R == 0 {
		return nil
	}
	return ptr(s.tr[t].atProbe / float64(s.tr[t].R))
}

// segF1 is the F1 score at the probe threshold over the sweep's pixels: 2TP / (TP + FP + P); nil when no
// pixel is a defect or predicted one.
func (s *sweep) segF1() *float64 {
	den := s.probeTP + s.probeFP + s.P
	if den == 0 {
		return nil
	}
	return ptr(float64(2*s.probeTP) / float64(den))
}

func (s *sweep) undefinedAUROC(what string) string {
	switch {
	case s.P == 0 && s.N == 0:
		return "no " + what
	case s.P == 0:
		return "no anomalous " + what
	case s.N == 0:
		return "no normal " + what
	}
	return ""
}

func (s *sweep) undefinedAP(what string) string { return "no anomalous " + what }

func (s *sweep) undefinedPRO() string {
	if s.tr[0].R == 0 {
		return "no ground-truth defect regions"
	}
	return "no normal pixels"
}

// curveBuilder thins a curve that is monotone in its two raw coordinates a and b (counts or sums): the
// sweep keeps a point only when a or b has grown by its step since the last kept point, so a curve has at
// most (1/step of a + 1/step of b) + a few points, and the test per threshold is two comparisons.
type curveBuilder struct {
	stepA, stepB float64
	nextA, nextB float64
	keptA, keptB float64
	c            sm.Curve
}

func newCurveBuilder(stepA, stepB float64) curveBuilder {
	// Nothing is due until the first keep; a builder that never keeps never stops the fast path.
	return curveBuilder{stepA: stepA, stepB: stepB, keptA: -1, keptB: -1, nextA: math.Inf(1), nextB: math.Inf(1)}
}

// keep appends the point (x, y) reached at raw coordinates (a, b) and threshold thr (has false: reached by
// no threshold).
func (b *curveBuilder) keep(a, bb, x, y, thr float64, has bool) {
	b.c.X = append(b.c.X, x)
	b.c.Y = append(b.c.Y, y)
	var p *float64
	if has {
		p = &thr
	}
	b.c.Threshold = append(b.c.Threshold, p)
	b.keptA, b.keptB = a, bb
	b.nextA, b.nextB = a+b.stepA, bb+b.stepB
}

func (b *curveBuilder) curve() sm.Curve {
	c := b.c
	if c.X == nil {
		c = sm.Curve{X: []float64{}, Y: []float64{}, Threshold: []*float64{}}
	}
	return thin(c, sm.MaxCurvePoints)
}

// thin keeps at most max points, evenly spaced by index with both ends kept; a safety net for curves that
// are not monotone (precision).
func thin(c sm.Curve, max int) sm.Curve {
	n := len(c.X)
	if n <= max {
		return c
	}
	out := sm.Curve{X: make([]float64, max), Y: make([]float64, max), Threshold: make([]*float64, max)}
	for i := 0; i < max; i++ {
		j := int(int64(i) * int64(n-1) / int64(max-1))
		out.X[i], out.Y[i], out.Threshold[i] = c.X[j], c.Y[j], c.Threshold[j]
	}
	return out
}
